"""Embedding a project of many tomograms: in this process or on a local Dask cluster, with
failures reported per tomogram and finished tomograms kept for a resumed run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from distributed import Client, LocalCluster

from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.operations.embed_project import (
    FAILURES,
    WORKER_ENVIRONMENT,
    embed_project_steps,
    local_cluster,
)
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import CLUSTER, TOMO_NAME, latent_columns
from napari_affinity_vae.simulate.project import write_project
from napari_affinity_vae.simulate.tomogram import Simulation

SMALL = Simulation(shape=(40, 96, 96), particles=7, snr=0.5, seed=11)
BATCH = 4  # several batches per tomogram


@pytest.fixture(scope="module")
def project_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    write_project(folder, SMALL, 3)
    return folder


@pytest.fixture(scope="module")
def bundled():
    return load_bundled()


def _embed(project, bundled, **kwargs) -> pd.DataFrame:
    steps = embed_project_steps(project, *bundled, batch=BATCH, **kwargs)
    return run_steps(steps, len(project.particles), "", None)


def _initial_environment() -> dict[str, str]:
    """The environment this process started with (not what it set since)."""
    pairs = Path("/proc/self/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def _latent(table: pd.DataFrame) -> np.ndarray:
    return table[latent_columns(table)].to_numpy()


def test_two_dask_workers_give_the_latents_of_one_process(project_folder, bundled):
    project = open_project([project_folder / "optimisation_set.star"])
    here = _embed(project, bundled)
    assert len(here) == 21 and np.isfinite(_latent(here)).all()
    with local_cluster(2) as cluster, Client(cluster) as client:
        there = _embed(project, bundled, client=client, threads=1)
        environments = client.run(_initial_environment)
    # in the workers' environment as they started (glibc reads it then), not Dask's 64 KiB
    assert [{k: e.get(k) for k in WORKER_ENVIRONMENT} for e in environments.values()] == [
        WORKER_ENVIRONMENT
    ] * 2
    np.testing.assert_allclose(_latent(there), _latent(here), atol=1e-5)
    assert there[TOMO_NAME].tolist() == here[TOMO_NAME].tolist()
    assert there.attrs[FAILURES] == {}


def test_a_broken_tomogram_is_reported_and_the_others_finish(
    project_folder, bundled, tmp_path, capsys
):
    for path in project_folder.glob("*.star"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "tomograms").mkdir()
    for name in ("TS_01", "TS_03"):
        source = project_folder / "tomograms" / f"{name}.mrc"
        (tmp_path / "tomograms" / f"{name}.mrc").write_bytes(source.read_bytes())
    (tmp_path / "tomograms" / "TS_02.mrc").write_bytes(b"truncated")
    project = open_project([tmp_path / "optimisation_set.star"])
    table = _embed(project, bundled)
    assert list(table.attrs[FAILURES]) == ["TS_02"]
    assert "TS_02.mrc: not a readable MRC file" in table.attrs[FAILURES]["TS_02"]
    embedded = np.isfinite(_latent(table)).all(axis=1)
    assert table.loc[embedded, TOMO_NAME].unique().tolist() == ["TS_01", "TS_03"]
    assert (~embedded).sum() == 7 and len(table) == 21
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        there = _embed(project, bundled, client=client)
    assert list(there.attrs[FAILURES]) == ["TS_02"]  # on a cluster as well
    np.testing.assert_allclose(_latent(there), _latent(table), atol=1e-5)
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(tmp_path / "optimisation_set.star"), "--out", str(out)]) == 3
    said = capsys.readouterr()  # written, but a script is told that a tomogram is missing
    assert "avae embed: TS_02 not embedded: " in said.err
    assert f"{out}: 14 of 21 particles embedded, of 3 tomograms (1 not embedded)" in said.out
    written = pd.read_csv(out)
    broken = written[TOMO_NAME] == "TS_02"
    assert (written.loc[broken, CLUSTER] == -1).all() and written.loc[
        broken, "embedding_x"
    ].isna().all()
    assert (written.loc[~broken, CLUSTER] >= 0).all()


def test_resume_skips_the_tomograms_an_earlier_run_finished(project_folder, bundled, tmp_path):
    project = open_project([project_folder / "optimisation_set.star"])
    parts = tmp_path / "out.star.parts"
    steps = embed_project_steps(project, *bundled, batch=BATCH, parts=parts)
    seen = []
    for done in steps:  # cancelled while the second tomogram is embedded
        seen.append(done)
        if done > 7:
            break
    steps.close()
    assert sorted(p.name for p in parts.glob("*.parquet")) == ["TS_01.parquet"]
    steps = embed_project_steps(project, *bundled, batch=BATCH, parts=parts)
    assert next(steps) == 7  # TS_01 is done already
    resumed = run_steps(steps, 21, "", None)
    np.testing.assert_allclose(_latent(resumed), _latent(_embed(project, bundled)), atol=1e-6)
    with pytest.raises(AffinityVAEError, match="another model, settings or map"):
        next(embed_project_steps(project, *bundled, batch=BATCH, parts=parts, inverted=True))
    # picks corrected (or read at another binning or voxel size) since: TS_01 is embedded again
    moved = dataclasses.replace(project, particles=project.particles.copy())
    moved.particles.loc[moved.rows_of("TS_01"), "x"] += 3.0
    steps = embed_project_steps(moved, *bundled, batch=BATCH, parts=parts)
    again = run_steps(steps, 21, "", None)
    np.testing.assert_allclose(_latent(again), _latent(_embed(moved, bundled)), atol=1e-6)
    assert not np.allclose(_latent(again)[:7], _latent(resumed)[:7], atol=1e-3)


def test_avae_embed_a_project_on_two_workers_writes_one_star_and_its_parquet_twin(
    project_folder, tmp_path, capsys
):
    out = tmp_path / "embedded.star"
    args = [str(project_folder / "tomograms.star"), str(project_folder / "particles.star")]
    assert main(["embed", *args, "--out", str(out), "--workers", "2", "--parquet", "--pca"]) == 0
    assert f"{out}: 21 of 21 particles embedded, of 3 tomograms" in capsys.readouterr().out
    back = open_project([project_folder / "tomograms.star", out])
    truth = open_project([project_folder / "optimisation_set.star"]).particles
    np.testing.assert_allclose(back.particles[["z", "y", "x"]], truth[["z", "y", "x"]], atol=1e-3)
    assert back.particles[TOMO_NAME].tolist() == truth[TOMO_NAME].tolist()
    assert np.isfinite(_latent(back.particles)).all() and back.particles[CLUSTER].min() >= 0
    twin = open_project([project_folder / "tomograms.star", out.with_suffix(".parquet")])
    np.testing.assert_allclose(_latent(twin.particles), _latent(back.particles), atol=1e-5)
    np.testing.assert_allclose(twin.particles[["z", "y", "x"]], back.particles[["z", "y", "x"]])
    assert twin.particles[CLUSTER].tolist() == back.particles[CLUSTER].tolist()


def test_avae_embed_refuses_a_project_output_it_cannot_write(project_folder, tmp_path, capsys):
    out = tmp_path / "embedded.tbl"
    assert main(["embed", str(project_folder / "optimisation_set.star"), "--out", str(out)]) == 2
    assert "a project is written as .star, .csv, .parquet" in capsys.readouterr().err


def test_a_scheduler_that_does_not_answer_is_a_clear_error():
    from napari_affinity_vae.operations.embed_project import connect

    with pytest.raises(
        AffinityVAEError, match=r"No Dask scheduler answers at tcp://127\.0\.0\.1:9"
    ):
        connect("tcp://127.0.0.1:9", timeout=1)


def test_an_embedded_project_embeds_again_with_its_old_columns_replaced(
    project_folder, tmp_path, capsys
):
    first = tmp_path / "first.star"
    tomograms = str(project_folder / "tomograms.star")
    assert main(["embed", str(project_folder / "optimisation_set.star"), "--out", str(first)]) == 0
    assert main(["embed", tomograms, str(first), "--out", str(tmp_path / "again.csv")]) == 0
    again = pd.read_csv(tmp_path / "again.csv")
    assert latent_columns(again) == [f"latent_{i}" for i in range(8)]  # no duplicates
    np.testing.assert_allclose(
        _latent(again),
        _latent(open_project([project_folder / "tomograms.star", first]).particles),
        atol=1e-4,
    )


def test_tomogram_options_hold_for_a_pair_embedded_as_a_project_and_not_for_a_project(
    project_folder, tmp_path, capsys
):
    """--resume (or workers) embeds a tomogram and its coordinate file as a project of one:
    --tomo-name and --skip-unusable still choose its rows; a project of many refuses the first."""
    tomogram = project_folder / "tomograms" / "TS_01.mrc"
    args = ["embed", str(tomogram), str(project_folder / "particles.star"), "--out"]
    out = tmp_path / "x.csv"
    assert main([*args, str(out), "--tomo-name", "TS_01", "--resume", "--skip-unusable"]) == 0
    assert set(pd.read_csv(out)["tomo_name"]) == {"TS_01"}
    twin = tmp_path / "twin.csv"  # --parquet, too, is written for a project of one
    assert main([*args, str(twin), "--tomo-name", "TS_01", "--parquet"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(twin.with_suffix(".parquet"))[["z", "y", "x"]],
        pd.read_csv(twin)[["z", "y", "x"]],
    )
    project = [
        "embed",
        str(project_folder / "tomograms.star"),
        str(project_folder / "particles.star"),
    ]
    assert main([*project, "--out", str(tmp_path / "y.csv"), "--tomo-name", "TS_01"]) == 2
    assert "--tomo-name is for a tomogram with its coordinate file" in capsys.readouterr().err


def test_ctrl_c_in_a_resumable_embedding_says_what_it_kept(
    project_folder, tmp_path, capsys, monkeypatch
):
    from napari_affinity_vae.operations import embed_project

    in_process = embed_project._in_process

    def first_then_ctrl_c(*args):
        for name, result in in_process(*args):
            yield name, result
            if name is not None:  # one tomogram finished
                raise KeyboardInterrupt

    monkeypatch.setattr(embed_project, "_in_process", first_then_ctrl_c)
    out = tmp_path / "embedded.csv"
    args = ["embed", str(project_folder / "optimisation_set.star"), "--out", str(out), "--resume"]
    assert main(args) == 130
    said = capsys.readouterr().err
    parts = tmp_path / "embedded.csv.parts"
    assert f"cancelled; the tomograms embedded so far are kept in {parts} (--resume" in said
    assert [p.name for p in parts.glob("*.parquet")] == ["TS_01.parquet"] and not out.exists()
    monkeypatch.undo()
    assert main(args) == 0 and len(pd.read_csv(out)) == 21


@pytest.mark.parametrize("particles", [0, 1, 2])
def test_a_folder_project_of_few_particles_on_a_uint8_tomogram(tmp_path, capsys, particles):
    from conftest import write_mrc

    rng = np.random.default_rng(0)
    write_mrc(tmp_path / "a.mrc", rng.integers(0, 255, (40, 64, 64)).astype(np.uint8))
    write_mrc(tmp_path / "b.mrc", rng.normal(size=(40, 64, 64)).astype(np.float16))
    rows = pd.DataFrame({"x": [32.0, 20.0], "y": [32.0, 40.0], "z": [20.0, 20.0]}).head(particles)
    rows.to_csv(tmp_path / "a.csv", index=False)  # 0 rows: a header-only CSV
    out = tmp_path / "out" / "embedded.csv"
    out.parent.mkdir()
    code = main(["embed", str(tmp_path), "--out", str(out), "--workers", "1"])
    if particles == 0:
        assert code == 2 and "no particles to embed" in capsys.readouterr().err
        assert not out.exists()
        return
    assert code == 0
    written = pd.read_csv(out)
    assert len(written) == particles and np.isfinite(_latent(written)).all()
    assert set(written[TOMO_NAME]) == {"a"} and (written[CLUSTER] >= 0).all()


def _two_noise_tomograms(folder: Path) -> Path:
    """TS_01 and TS_02, 40 x 64 x 64 voxels of noise, in ``folder``."""
    from conftest import write_mrc

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("TS_01", "TS_02"):
        write_mrc(folder / f"{name}.mrc", rng.normal(size=(40, 64, 64)).astype(np.float32))
    return folder


def test_a_tomogram_whose_particles_lie_outside_is_reported_and_the_others_finish(tmp_path, capsys):
    folder = _two_noise_tomograms(tmp_path / "tomograms")
    star = tmp_path / "particles.star"
    particles = {  # TS_02's in unbinned pixels: the user forgot --binning
        "rlnTomoName": ["TS_01", "TS_01", "TS_02"],
        "rlnCoordinateX": [32.0, 20.0, 128.0],
        "rlnCoordinateY": [32.0, 40.0, 128.0],
        "rlnCoordinateZ": [20.0, 20.0, 80.0],
    }
    starfile.write({"particles": pd.DataFrame(particles)}, star)
    outside = (
        "1 of 1 particles lie outside the tomogram (z, y, x shape (40, 64, 64)); "
        "is it the right tomogram and binning?"
    )
    assert main(["project", str(star), str(folder)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].endswith("TS_01.mrc)")
    assert listed[2].endswith(f"TS_02.mrc); {outside}")
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(star), str(folder), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"avae embed: TS_02 not embedded: {folder / 'TS_02.mrc'}: {outside}" in err
    assert err.count("--skip-unusable skips them") == 1 and "Traceback" not in err
    written = pd.read_csv(out)
    embedded = np.isfinite(_latent(written)).all(axis=1)
    assert written.loc[embedded, TOMO_NAME].tolist() == ["TS_01", "TS_01"]
    assert not embedded[written[TOMO_NAME] == "TS_02"].any()


def test_a_folder_s_coordinate_file_with_rows_outside_is_listed_with_skip_unusable(
    tmp_path, capsys
):
    """avae project, the command that lists what is missing, could not list a folder whose
    coordinate file has rows outside its tomogram: it said nothing of --skip-unusable, and
    had no such option."""
    folder = _two_noise_tomograms(tmp_path / "tomograms")
    rows = {"x": [32.0, 32.0, 500.0], "y": [32.0, 20.0, 32.0], "z": [20.0, 20.0, 20.0]}
    pd.DataFrame(rows).to_csv(folder / "TS_02.csv", index=False)
    assert main(["project", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "TS_02.csv: 1 of 3 particles lie outside" in err
    assert err.rstrip().endswith("--skip-unusable skips them")
    assert main(["project", str(folder), "--skip-unusable"]) == 0
    assert "TS_02: 2 particles" in capsys.readouterr().out


def test_skip_unusable_leaves_out_a_project_s_rows_outside_and_embeds_the_rest(tmp_path, capsys):
    """A tomogram reconstructed thinner than it was picked on: its picks in the slab cut off
    are left out, its others embedded, each tomogram's count told."""
    folder = _two_noise_tomograms(tmp_path / "tomograms")
    star = tmp_path / "particles.star"
    particles = {
        "rlnTomoName": ["TS_01", "TS_02", "TS_02", "TS_02"],
        "rlnCoordinateX": [32.0, 20.0, 40.0, 30.0],
        "rlnCoordinateY": [32.0, 40.0, 20.0, 30.0],
        "rlnCoordinateZ": [20.0, 20.0, 45.0, float("nan")],
    }
    starfile.write({"particles": pd.DataFrame(particles)}, star)
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(star), str(folder), "--out", str(out), "--skip-unusable"]) == 0
    err = capsys.readouterr().err
    assert "TS_02: 1 of 3 particles have missing (NaN) coordinates; they were left out" in err
    outside = "TS_02: 1 of 3 particles lie outside the tomogram (z, y, x shape (40, 64, 64))"
    assert f"{outside}; they were left out" in err
    assert "not embedded" not in err and "TS_01:" not in err
    written = pd.read_csv(out)
    assert written[TOMO_NAME].tolist() == ["TS_01", "TS_02"]
    assert written["x"].tolist() == [32.0, 20.0] and np.isfinite(_latent(written)).all()


def test_skip_unusable_reads_a_folder_project_s_coordinate_files(tmp_path, capsys):
    _two_noise_tomograms(tmp_path)
    (tmp_path / "TS_01.csv").write_text("x,y,z\n32,32,20\n")
    (tmp_path / "TS_02.csv").write_text("x,y,z\n20,40,20\n500,40,20\n")  # one far outside
    out = tmp_path / "out" / "embedded.csv"
    out.parent.mkdir()
    assert main(["embed", str(tmp_path), "--out", str(out)]) == 2
    said = capsys.readouterr().err
    assert "TS_02.csv: 1 of 2 particles lie outside" in said and "--skip-unusable skips" in said
    assert main(["embed", str(tmp_path), "--out", str(out), "--skip-unusable"]) == 0
    assert "TS_02.csv: 1 of 2 particles lie outside" in capsys.readouterr().err
    assert pd.read_csv(out)[TOMO_NAME].tolist() == ["TS_01", "TS_02"]


def test_skip_unusable_keeps_the_particles_of_tomograms_it_cannot_check(project_folder):
    """Particles whose tomogram is not described have no positions yet: they are not unusable
    rows but a tomogram the embedding reports."""
    alone = open_project([project_folder / "particles.star"])
    skipped = open_project([project_folder / "particles.star"], skip_unusable=True)
    assert len(skipped.particles) == len(alone.particles) == 21
