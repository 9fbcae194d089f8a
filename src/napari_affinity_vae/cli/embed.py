"""``avae embed`` and ``avae project``: particles of a tomogram or a project embedded, and
projects listed."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from napari_affinity_vae.errors import (
    AffinityVAEError,
    ParticleFileError,
    UnusableRowsError,
)

if TYPE_CHECKING:
    import pandas as pd

from napari_affinity_vae.cli.options import (
    add_pick_set_options,
    pick_set_choice,
    positive,
    positive_int,
)
from napari_affinity_vae.cli.outputs import Cancelled, add_overwrite, refuse_existing

PARQUET_ABOVE = 100_000  # particles: a Parquet twin of the output beside a text one


PARTLY_DONE = 3  # exit status: a project written without the tomograms that failed


def add_embed(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.analysis.clustering import CLUSTERINGS
    from napari_affinity_vae.operations import defaults

    em = commands.add_parser(
        "embed",
        help="latent vectors, 2D embedding and clusters for the particles of a tomogram or a "
        "project",
        description="Writes the particles with latent_*, pose_*, crosses_edge (and "
        "reconstruction_error with --error), embedding_x and embedding_y (UMAP unless --pca or "
        "--tsne; above 50,000 particles UMAP or t-SNE of a sample, the rest placed among their "
        "nearest sampled neighbours), cluster "
        "(k-means into 10 unless told otherwise, as in the Embed widget) and cluster_centre. "
        "A coordinate file without particles is an error: there is "
        "nothing to embed. More clusters than particles gives one cluster per particle, said on "
        "stderr; HDBSCAN leaves fewer than 5 particles as noise (-1), and UMAP and t-SNE lay out "
        "fewer than 5 by PCA, with a warning. A tomogram whose voxel size is more than 4 times "
        "finer or coarser than the model's is refused: check its header or give --voxel-size. "
        f"A project some of whose tomograms could not be embedded is still written, each "
        f"failure said on stderr, and the exit status is {PARTLY_DONE}.",
    )
    em.add_argument(
        "sources",
        type=Path,
        nargs="+",
        metavar="SOURCE",
        help="a tomogram and its coordinate file (any format), or a project as `avae project` "
        "takes it",
    )
    em.add_argument(
        "--out",
        type=Path,
        required=True,
        help=".star or .csv (a tomogram's also .tbl, .coords, .mod; a project's also .parquet)",
    )
    em.add_argument(
        "--model", type=Path, help='a checkpoint or "bundled-splat" (default: the bundled model)'
    )
    em.add_argument("--voxel-size", type=float, help="Angstrom (overrides the header)")
    em.add_argument(
        "--tomo-name",
        help="which tomogram's particles, in a STAR file, CSV or Dynamo table (tomogram number) "
        "holding several",
    )
    em.add_argument("--inverted", action="store_true", help="protein is white")
    em.add_argument(
        "--skip-unusable",
        action="store_true",
        help="skip rows with NaN coordinates or outside their tomogram, saying how many "
        "(otherwise they are an error: a folder's coordinate file stops the project; rows of a "
        "project's STAR file keep their tomogram from being embedded)",
    )
    em.add_argument(
        "--error",
        action="store_true",
        help="also each box's reconstruction error (runs the decoder too: about 4x slower)",
    )
    view = em.add_mutually_exclusive_group()
    for method, name in (("pca", "PCA (instant)"), ("umap", "UMAP"), ("tsne", "t-SNE")):
        default = " (default)" if method == defaults.PROJECTION else ""
        view.add_argument(
            f"--{method}",
            dest="projection",
            action="store_const",
            const=method,
            help=f"2D embedding by {name}{default}",
        )
    em.set_defaults(projection=defaults.PROJECTION)
    em.add_argument(
        "--clusters",
        type=positive_int,
        metavar="K",
        default=defaults.CLUSTERS,
        help=f"cluster into K groups (default {defaults.CLUSTERS})",
    )
    em.add_argument("--clustering", choices=CLUSTERINGS, default=defaults.CLUSTERING)
    em.add_argument("--seed", type=int, default=defaults.SEED)
    batch = em.add_argument_group("projects of many tomograms")
    batch.add_argument(
        "--workers", type=int, metavar="N", help="run on a local Dask cluster of N processes"
    )
    batch.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster (its workers must see the files at the same paths)",
    )
    batch.add_argument(
        "--resume",
        action="store_true",
        help="keep finished tomograms in OUT.parts/ and skip those kept by an earlier run",
    )
    em.add_argument(
        "--binning",
        type=positive,
        default=1.0,
        help="as for `avae project`; a tomogram's coordinate file is written back in its pixels",
    )
    em.add_argument(
        "--map",
        metavar="KIND",
        help="cut boxes from this map of every tomogram: RELION 5's denoised, reconstructed, "
        "half1 or half2, a copick tomogram type (default: each tomogram's first, denoised where "
        "there is one; `avae project` lists them)",
    )
    batch.add_argument(
        "--parquet",
        action="store_true",
        help=f"also write OUT with the suffix .parquet (always above {PARQUET_ABOVE:,} particles)",
    )
    add_pick_set_options(em)
    add_overwrite(em)
    em.set_defaults(run=_run_embed)


def add_project(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.io.projects.sources import SOURCES

    pr = commands.add_parser(
        "project",
        help="list a project's tomograms, voxel sizes, particles per tomogram, what is missing",
        description=f"SOURCE is {SOURCES}. STAR files are told apart by their content.",
    )
    pr.add_argument("sources", type=Path, nargs="+", metavar="SOURCE")
    pr.add_argument(
        "--binning",
        type=positive,
        default=1.0,
        help="pixel coordinates (RELION 4, Dynamo, CSV, .coords, .mod) are in pixels this many "
        "times finer than the tomograms' voxels (RELION 5's centred Angstrom need none, nor a STAR "
        "file whose data_optics gives rlnTomoTiltSeriesPixelSize)",
    )
    pr.add_argument(
        "--voxel-size",
        type=float,
        help="Angstrom, for tomograms whose headers have none or a wrong one (RELION 5's STAR "
        "files give theirs)",
    )
    pr.add_argument(
        "--tomo-name",
        help="for a tomogram with a STAR file, Dynamo table or CSV holding several tomograms: "
        "which tomogram's particles",
    )
    pr.add_argument(
        "--skip-unusable",
        action="store_true",
        help="list it as avae embed --skip-unusable embeds it: skip rows with NaN coordinates "
        "or outside their tomogram, saying how many (otherwise they are an error)",
    )
    add_pick_set_options(pr)
    pr.set_defaults(run=_run_project)


def _run_embed(args: argparse.Namespace) -> int:
    refuse_existing(args, args.out)
    sources = args.sources
    if (
        len(sources) == 2
        and _is_tomogram(sources[0])
        and not (args.workers or args.scheduler or args.resume or args.parquet or args.map)
        and not _chooses_pick_sets(args)
    ):  # else as a project of one, which these options are written for (or refused by)
        return _embed_one(args, *sources)
    return _embed_project(args)


def _chooses_pick_sets(args: argparse.Namespace) -> bool:
    """Whether the command line chooses among a copick project's picks or maps."""
    from napari_affinity_vae.io.projects.copick import PickSetChoice

    return pick_set_choice(args) != PickSetChoice()


def _is_tomogram(path: Path) -> bool:
    """Whether ``path`` names a tomogram (an MRC-family file or an OME-Zarr folder)."""
    from napari_affinity_vae.io.compressed import uncompressed_suffix
    from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES, ZARR_SUFFIX

    return uncompressed_suffix(path) in (*TOMOGRAM_SUFFIXES, ZARR_SUFFIX)


def _embed_one(args: argparse.Namespace, tomogram_path: Path, coords: Path) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.io.frame import binned_pixel_size
    from napari_affinity_vae.io.particles import check_output, read_particles, write_particles
    from napari_affinity_vae.io.star import star_layout
    from napari_affinity_vae.io.tomogram import open_tomogram
    from napari_affinity_vae.model.embedding import embed
    from napari_affinity_vae.schema import (
        COORDINATE_BINNING,
        CROSSES_EDGE,
        TOMO_NAME,
        derived_columns,
    )

    check_output(args.out)
    tomogram = open_tomogram(tomogram_path, args.voxel_size)
    pixel_size = binned_pixel_size(tomogram.voxel_size, args.binning)
    try:
        particles = read_particles(
            coords,
            voxel_size=tomogram.voxel_size,
            tomogram_shape=tomogram.shape,
            tomo_name=args.tomo_name,
            pixel_size=pixel_size,
            drop_nan=args.skip_unusable,
            drop_outside=args.skip_unusable,
        )
    except UnusableRowsError as err:
        raise UnusableRowsError(err.path, f"{err.problem}; --skip-unusable skips them") from None
    if particles.empty:
        raise ParticleFileError(coords, "no particles to embed")
    if COORDINATE_BINNING not in particles.attrs:  # Angstrom, fractions: the binning took no part
        pixel_size = None
    particles = particles.drop(columns=derived_columns(particles))  # an earlier embedding's
    model, card = _model(args)
    table = embed(
        tomogram, particles, model, card, inverted=args.inverted, progress=tqdm, error=args.error
    )
    table = _analysed(args, table)
    if TOMO_NAME not in table:
        table.insert(0, TOMO_NAME, tomogram.name)
    centred, blocks = False, {}
    if coords.suffix.lower() == ".star" == args.out.suffix.lower():  # back in the same layout
        centred, blocks = star_layout(coords)
    write_particles(
        table,
        args.out,
        voxel_size=tomogram.voxel_size,
        tomogram_shape=tomogram.shape,
        pixel_size=pixel_size,
        star_flavour="relion5" if centred else "relion4",
        star_blocks=blocks,
    )
    _say_unaligned(table, args.out)
    edge = int(table[CROSSES_EDGE].sum())
    print(f"{args.out}: {len(table)} particles embedded ({edge} boxes crossing the edge)")
    return 0


def _say_unaligned(table: pd.DataFrame, out: Path) -> None:
    """Say how many particles lacking an angle ``out`` holds with angles 0 (a STAR file, a
    Dynamo table), as the Export dock says it."""
    from napari_affinity_vae.operations.export import format_of_suffix, without_angles
    from napari_affinity_vae.text import count

    label = format_of_suffix(out.suffix.lower(), "CSV") or "CSV"
    unaligned = without_angles({out: table}, label)
    if unaligned:
        print(
            f"avae embed: {count(unaligned, 'particle')} without angles, or with some missing, "
            f"{'was' if unaligned == 1 else 'were'} written with angles 0",
            file=sys.stderr,
        )


def _embed_project(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.io.projects.relion5 import check_centred
    from napari_affinity_vae.io.projects.writing import check_output, write_project_table
    from napari_affinity_vae.operations.embed_project import (
        FAILURES,
        SKIP_HINT,
        embed_project_steps,
    )
    from napari_affinity_vae.progress import run_steps
    from napari_affinity_vae.schema import latent_columns

    check_output(args.out)
    project = _opened_project(args, skip_unusable=args.skip_unusable)
    _choose_map(project, args)
    if project.particles.empty:
        lone = len(args.sources) == 1 and _is_tomogram(args.sources[0])
        given = ": give its coordinate file after it" if lone else ""
        raise ParticleFileError(args.sources[0], f"no particles to embed{given}")
    if args.out.suffix.lower() == ".star":  # before the work, not after
        check_centred(project, project.particles, args.out)
    parquet = args.parquet or len(project.particles) > PARQUET_ABOVE
    if parquet:
        refuse_existing(args, args.out.with_suffix(".parquet"))
    model, card = _model(args)
    parts = args.out.with_name(args.out.name + ".parts") if args.resume else None
    with _dask_client(args) as (client, threads):
        steps = embed_project_steps(
            project,
            model,
            card,
            inverted=args.inverted,
            client=client,
            parts=parts,
            threads=threads,
            error=args.error,
        )
        try:
            table = run_steps(steps, len(project.particles), "embedding", tqdm)
        except KeyboardInterrupt:
            if parts is not None and any(parts.glob("*.parquet")):
                raise Cancelled(
                    f"the tomograms embedded so far are kept in {parts} (--resume goes on "
                    "from there)"
                ) from None
            raise
    failed = table.attrs[FAILURES]
    for name, why in failed.items():
        why = why.replace(SKIP_HINT, "--skip-unusable skips them")
        print(f"avae embed: {name} not embedded: {why}", file=sys.stderr)
    if not latent_columns(table):
        raise ParticleFileError(args.sources[0], "no tomogram could be embedded")
    table = _analysed(args, table)
    embedded = int(table[latent_columns(table)[0]].notna().sum())
    tomograms = len(set(project.tomograms) | set(failed))  # with those the files named only
    done = f"{embedded} of {len(table)} particles embedded, of {tomograms} tomograms"
    done += f" ({len(failed)} not embedded)" if failed else ""
    for path in write_project_table(project, table, args.out, parquet=parquet):
        print(f"{path}: {done}")
    return PARTLY_DONE if failed else 0


def _model(args: argparse.Namespace):
    from napari_affinity_vae.model.bundled import checkpoint_path
    from napari_affinity_vae.model.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint_path(args.model or "bundled"))


def _analysed(args: argparse.Namespace, table):
    """``table`` with the 2D embedding and clusters of its embedded rows (the others: none)."""
    from napari_affinity_vae.operations.analyse import NOTES, analyse_steps
    from napari_affinity_vae.progress import run_steps
    from napari_affinity_vae.schema import latent_columns

    latent = table[latent_columns(table)].to_numpy()
    steps = analyse_steps(latent, args.projection, args.clustering, args.clusters, args.seed)
    columns = run_steps(steps, 2, "projecting and clustering", None)
    for note in columns.attrs[NOTES]:
        print(f"avae embed: {note}", file=sys.stderr)
    columns.index = table.index
    return table.drop(columns=list(columns), errors="ignore").join(columns)


@contextlib.contextmanager
def _dask_client(args: argparse.Namespace):
    """A Dask client (and torch threads per worker) for --workers or --scheduler, else None."""
    if not (args.workers or args.scheduler):
        yield None, None
        return
    if args.scheduler:
        from napari_affinity_vae.operations.embed_project import connect

        with connect(args.scheduler) as client:
            yield client, None
        return
    if args.workers < 1:
        raise AffinityVAEError(f"--workers must be at least 1, got {args.workers}")
    from distributed import Client

    from napari_affinity_vae.model.inference import usable_cores
    from napari_affinity_vae.operations.embed_project import local_cluster

    with local_cluster(args.workers) as cluster, Client(cluster) as client:
        yield client, max(1, usable_cores() // args.workers)


def _choose_map(project, args: argparse.Namespace) -> None:
    """Cut the project's boxes from ``--map``: refused where no tomogram has such a map, or
    where ``--tomo-type`` (which chose a copick project's tomograms) names another."""
    if args.map is None:
        return
    if args.tomo_type and args.tomo_type != args.map:
        raise AffinityVAEError(
            f"--tomo-type {args.tomo_type} and --map {args.map} name different maps: give one"
        )
    if not any(args.map in entry.files for entry in project.tomograms.values()):
        kinds = dict.fromkeys(k for e in project.tomograms.values() for k in e.files)
        raise AffinityVAEError(
            f"--map {args.map}: no tomogram has such a map (they have {', '.join(kinds) or 'none'})"
        )
    project.map = args.map


def _opened_project(args: argparse.Namespace, skip_unusable: bool = False):
    """The project ``args.sources`` name, opened as ``avae project`` and ``avae embed`` do: a
    coordinate file's unusable rows are an error saying that ``--skip-unusable`` skips them."""
    from napari_affinity_vae.io.projects import open_project

    try:
        return open_project(
            args.sources,
            binning=args.binning,
            voxel_size=args.voxel_size,
            pick_sets=pick_set_choice(args),
            tomo_name=args.tomo_name,
            skip_unusable=skip_unusable,
        )
    except UnusableRowsError as err:  # a folder's coordinate file
        raise UnusableRowsError(err.path, f"{err.problem}; --skip-unusable skips them") from None


def _run_project(args: argparse.Namespace) -> int:
    print(_opened_project(args, skip_unusable=args.skip_unusable).describe())
    return 0


def _first_voxel_size(paths: list[Path]) -> float:
    from napari_affinity_vae.io.compressed import uncompressed_suffix
    from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES
    from napari_affinity_vae.simulate.molecules import peek_map

    for path in paths:
        if uncompressed_suffix(path) in TOMOGRAM_SUFFIXES:
            return float(peek_map(path).voxel_size)
    return 10.0
