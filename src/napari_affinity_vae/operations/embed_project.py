"""Embed every particle of a project: one task per tomogram, run in this process or on a Dask
cluster (``dask.distributed``: a local cluster of worker processes, or an existing one such as
``dask-jobqueue``'s SLURM cluster, whose workers must see the tomograms at the same paths).

A task opens its tomogram memory-mapped where it runs, extracts and encodes its particles with
the model (sent to each worker once) and returns their derived columns. With a ``parts`` folder,
each finished tomogram is kept there, and a later run skips it. A tomogram that fails is
reported in ``attrs["failures"]``; its particles stay, without latents, and the others finish.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.io.projects import Project, TomogramEntry
from napari_affinity_vae.model.checkpoint import ModelCard
from napari_affinity_vae.model.embedding import BATCH, embed_steps
from napari_affinity_vae.model.inference import use_threads
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import AXES, TOMOGRAM_MISSING, derived_columns

FAILURES = "failures"  # attrs key: tomogram name -> why it was not embedded
SKIP_HINT = "skip unusable rows to embed the others"  # ends why a tomogram's rows were unusable
RUN_FILE = "run.json"  # in the parts folder: what the parts were embedded with
PART_VOXEL_SIZE = "part_voxel_size"  # a part's column: the tomogram's voxel size it was cut at
# Dask sets MALLOC_TRIM_THRESHOLD_ to 64 KiB for its workers, and any such setting stops glibc
# from raising its thresholds as a program frees large blocks: every forward pass then maps its
# layers' outputs afresh and faults them in page by page (the encoder ran at two thirds of its
# speed in a worker). Blocks up to 32 MiB come from the heap here, and 128 MiB may stay free.
WORKER_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(2**25), "MALLOC_TRIM_THRESHOLD_": str(2**27)}


def embed_tomogram(
    entry: TomogramEntry,
    particles: pd.DataFrame,
    model_and_card: tuple[AffinityVAE, ModelCard],
    batch: int = BATCH,
    inverted: bool = False,
    threads: int | None = None,
    error: bool = False,
    kind: str | None = None,
) -> pd.DataFrame:
    """The derived columns (latents, pose, edge, error if asked) of one tomogram's particles,
    cut from its map of ``kind`` (default its first), indexed as ``particles``; what a task
    runs wherever it runs."""
    use_threads(threads)
    model, card = model_and_card
    tomogram = entry.open(kind)
    steps = embed_steps(tomogram, particles[list(AXES)], model, card, batch, inverted, error)
    table = run_steps(steps, len(particles), "", None)
    return table[derived_columns(table)].set_index(particles.index)


def embed_project_steps(
    project: Project,
    model: AffinityVAE,
    card: ModelCard,
    *,
    batch: int = BATCH,
    inverted: bool = False,
    client: Any = None,
    parts: Path | None = None,
    threads: int | None = None,
    error: bool = False,
) -> Generator[int, None, pd.DataFrame]:
    """Yield how many particles are done (after each batch in this process, after each
    tomogram on a ``client``); return the project's particles with the derived columns (NaN
    for those not embedded: see ``attrs["failures"]``); ``error`` adds the reconstruction
    error, which runs the decoder too. Boxes are cut from each tomogram's ``project.map``.
    Stop iterating to cancel."""
    particles = project.particles.drop(columns=derived_columns(project.particles))
    jobs, failures = _jobs(project)
    done = {}
    if parts is not None:
        record = _run_record(card, batch, inverted, error, project.map)
        done = _load_parts(parts, record, project, jobs)
    count = sum(len(t) for t in done.values())
    if count:
        yield count
    pending = {name: rows for name, rows in jobs.items() if name not in done}
    if client is None:
        results = _in_process(project, pending, (model, card), batch, inverted, error)
    else:
        settings = (batch, inverted, threads, error)
        results = _on_cluster(client, project, pending, (model, card), settings)
    for name, result in results:  # (None, done in this tomogram) or (name, its result)
        if name is None:
            yield count + result
            continue
        if isinstance(result, BaseException):
            failures[name] = str(result)
        else:
            done[name] = result
            count += len(result)
            if parts is not None:
                _save_part(parts, name, result, project, jobs[name])
        yield count
    columns = pd.concat(list(done.values())) if done else pd.DataFrame(index=pd.Index([]))
    table = particles.join(columns.sort_index(), how="left")  # earlier results replaced
    table.attrs = dict(project.particles.attrs) | {FAILURES: failures}
    return table


def local_cluster(workers: int) -> Any:
    """A Dask cluster of ``workers`` processes on this machine, a task at a time each, with the
    allocator settings of :data:`WORKER_ENVIRONMENT`."""
    import dask
    from distributed import LocalCluster

    key = "distributed.nanny.pre-spawn-environ"  # glibc reads them as the process starts
    with dask.config.set({key: dask.config.get(key) | WORKER_ENVIRONMENT}):
        return LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None, processes=True
        )


def connect(address: str, timeout: float = 10.0) -> Any:
    """A Dask client of the scheduler at ``address`` (a clear error if none answers)."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as err:
        raise AffinityVAEError(f"No Dask scheduler answers at {address} ({err})") from None


def on_scheduler(
    address: str, steps: Callable[[Any], Generator[int, None, pd.DataFrame]]
) -> Generator[int, None, pd.DataFrame]:
    """``steps(client)`` on the Dask scheduler at ``address``, connected where this runs (a
    widget's worker thread) and closed when the steps end or are cancelled."""
    client = connect(address)
    try:
        return (yield from steps(client))
    finally:
        client.close()


def _jobs(project: Project) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Each tomogram's particles to embed, and why some tomograms cannot be."""
    particles = project.particles
    jobs, failures = {}, {}
    for name in project.counts().index:
        rows = particles.iloc[project.rows_of(name)]
        if rows.empty:
            continue
        entry = project.tomograms.get(name)
        if entry is None or entry.problem or rows[TOMOGRAM_MISSING].any():
            failures[name] = entry.problem if entry and entry.problem else "no tomogram"
        elif lacking := entry.lacks(project.map):
            failures[name] = lacking
        elif rows[list(AXES)].isna().any(axis=None):
            failures[name] = f"particles without positions; {SKIP_HINT}"
        elif outside := project.outside(name):
            failures[name] = f"{entry.path}: {outside}; {SKIP_HINT}"
        else:
            jobs[name] = rows[list(AXES)]
    return jobs, failures


def _in_process(project, jobs, model_and_card, batch, inverted, error):
    """One tomogram after another here, with progress after each batch."""
    model, card = model_and_card
    for name, rows in jobs.items():
        try:
            tomogram = project.boxes_from(name)
            steps = embed_steps(tomogram, rows, model, card, batch, inverted, error)
            table = yield from _tagged(steps)
        except (AffinityVAEError, OSError, ValueError) as err:  # this tomogram; the rest go on
            yield name, err
            continue
        yield name, table[derived_columns(table)].set_index(rows.index)


def _tagged(steps: Generator[int, None, pd.DataFrame]) -> Generator[tuple, None, pd.DataFrame]:
    """``steps``' progress as ``(None, done)`` pairs; return its result."""
    while True:
        try:
            done = next(steps)
        except StopIteration as end:
            return end.value
        yield None, done


def _on_cluster(client, project, jobs, model_and_card, settings):
    """One task per tomogram on the cluster; results as they finish. Closing the generator
    (a cancel) cancels the tasks not yet done."""
    from distributed import as_completed

    # unique keys: a model scattered by a run that was cancelled and is being released must not
    # be taken for this run's (content-hashed keys are shared, and vanish with the old run)
    shared = client.scatter(model_and_card, broadcast=True, hash=False)
    futures = {
        client.submit(
            embed_tomogram,
            project.tomograms[name],
            rows,
            shared,
            *settings,
            project.map,
            pure=False,
        ): name
        for name, rows in jobs.items()
    }
    try:
        for future, result in as_completed(futures, with_results=True, raise_errors=False):
            failed = future.status == "error"  # then the result is (type, exception, traceback)
            yield futures[future], result[1] if failed else result
    finally:
        client.cancel(list(futures))


def _run_record(card: ModelCard, batch: int, inverted: bool, error: bool, kind: str | None) -> dict:
    record = {"model": card.to_json(), "batch": batch, "inverted": inverted, "error": error}
    return record | ({"map": kind} if kind else {})  # as before where no map is chosen


def _load_parts(parts: Path, record: dict, project: Project, jobs: dict[str, pd.DataFrame]) -> dict:
    """Finished tomograms kept in ``parts`` by an earlier run with the same model and settings,
    of the same particles at the same places in a tomogram of the same voxel size (a part of
    picks since corrected, or of another binning or voxel size, is embedded again)."""
    parts.mkdir(parents=True, exist_ok=True)
    run = parts / RUN_FILE
    if run.is_file() and json.loads(run.read_text()) != record:
        raise AffinityVAEError(
            f"{parts} holds tomograms embedded with another model, settings or map; remove it or "
            "run without --resume"
        )
    with atomic_path(run) as tmp:
        tmp.write_text(json.dumps(record))
    done = {}
    for name, rows in jobs.items():
        path = parts / f"{name}.parquet"
        if not path.is_file():
            continue
        table = pd.read_parquet(path)
        same = (
            len(table) == len(rows)
            and np.array_equal(table.index, rows.index)
            and {*AXES, PART_VOXEL_SIZE} <= set(table)
            and np.allclose(table[list(AXES)], rows[list(AXES)], rtol=0, atol=1e-6)
            and np.allclose(table[PART_VOXEL_SIZE], project.tomograms[name].voxel_size or np.nan)
        )
        if same:
            done[name] = table.drop(columns=[*AXES, PART_VOXEL_SIZE])
    return done


def _save_part(
    parts: Path, name: str, table: pd.DataFrame, project: Project, rows: pd.DataFrame
) -> None:
    """A finished tomogram's derived columns, with the positions and voxel size they are of."""
    kept = table.join(rows[list(AXES)]).assign(
        **{PART_VOXEL_SIZE: project.tomograms[name].voxel_size}
    )
    with atomic_path(parts / f"{name}.parquet") as tmp:
        kept.to_parquet(tmp)
