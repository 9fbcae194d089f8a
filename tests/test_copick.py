"""copick projects, built here with the copick library on the local file system: listed and
embedded by the command line, and particles written back as picks that copick reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.io.projects.copick import (
    COPICK_USER,
    PickSetChoice,
    next_session,
    write_copick_picks,
)
from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.operations.export import EACH_CLUSTER, copick_sessions
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME, TOMO_NAME, latent_columns
from napari_affinity_vae.simulate.geometry import relion_matrix

copick = pytest.importorskip("copick")
from copick_files import build_copick_project, simulated_runs  # noqa: E402
from napari_affinity_vae.simulate.copick_project import copick_object as object_name  # noqa: E402
from zarr_files import simulated_project_listing  # noqa: E402


@pytest.fixture(scope="module")
def simulated():
    return simulated_runs()


@pytest.fixture
def project(tmp_path, simulated):
    return build_copick_project(tmp_path, simulated)


def test_avae_project_lists_the_runs_and_pick_sets(project, simulated, capsys):
    assert main(["project", str(project)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("3 tomograms, 20 particles")
    assert "TS_01: 10 particles, 48 x 128 x 128 voxels at 10 Å" in printed
    assert "wbp.zarr" in printed and "TS_03: 0 particles, ? voxels at ?; no tomogram" in printed
    classes = simulated["TS_01"].particles[CLASS_NAME].value_counts()
    both = classes.add(simulated["TS_02"].particles[CLASS_NAME].value_counts(), fill_value=0)
    for name, n in both.items():
        assert f"  {object_name(name)} by curator, session 0: {int(n)} pick" in printed
    assert "9 pick sets (--object, --user, --session):" in printed

    assert main(["project", str(project), "--object", "ribosome", "--tomo-type", "denoised"]) == 0
    printed = capsys.readouterr().out
    assert f"{int(both['ribosome'])} particles" in printed.splitlines()[0]
    assert "denoised.zarr" in printed and "TS_02: " in printed and "no denoised tomogram" in printed


def test_picks_are_counted_once_when_the_static_root_is_the_overlay_root(project, capsys):
    config = json.loads(project.read_text())
    config["static_root"] = config["overlay_root"]  # one folder read and written
    project.write_text(json.dumps(config))
    assert main(["project", str(project)]) == 0
    assert capsys.readouterr().out.startswith("3 tomograms, 20 particles")


def test_picks_become_particles_in_voxels_with_their_angles(project, simulated):
    table = open_project([project]).particles
    for name, result in simulated.items():
        mine = table[table[TOMO_NAME] == name].sort_values(list(AXES)).reset_index(drop=True)
        truth = result.particles.sort_values(list(AXES)).reset_index(drop=True)
        np.testing.assert_allclose(mine[list(AXES)], truth[list(AXES)], atol=1e-6)
        np.testing.assert_allclose(
            relion_matrix(mine[list(ANGLES)].to_numpy()),
            relion_matrix(truth[list(ANGLES)].to_numpy()),
            atol=1e-6,
        )
    assert set(table[COPICK_USER]) == {"curator"}


def test_refined_shifts_move_the_particles_and_a_set_without_points_is_empty(project):
    """Subtomogram averaging writes refined shifts as the transforms' translation (Angstrom);
    copick's schema lets a picks file list ``null`` points."""
    root = copick.from_file(str(project))
    run = root.get_run("TS_01")
    shifted = run.new_picks("ribosome", session_id="refined", user_id="sta")
    transform = np.eye(4)
    transform[:3, 3] = [20.0, -10.0, 5.0]  # x, y, z Angstrom
    shifted.from_numpy(np.array([[300.0, 400.0, 200.0]]), transform[None])
    shifted.store()
    empty = run.new_picks("ribosome", session_id="none", user_id="sta")
    empty.store()
    listing = Path(empty.path)
    listing.write_text(listing.read_text().replace('"points": []', '"points": null'))
    assert '"points": null' in listing.read_text()
    refined = open_project([project], pick_sets=PickSetChoice("ribosome", "sta", "refined"))
    np.testing.assert_allclose(refined.particles[list(AXES)], [[20.5, 39.0, 32.0]])  # z, y, x
    none = open_project([project], pick_sets=PickSetChoice("ribosome", "sta", "none"))
    assert none.particles.empty and none.pick_sets[("ribosome", "sta", "none")] == 0


def test_a_configuration_whose_root_is_missing_is_named(project, tmp_path, monkeypatch, capsys):
    config = json.loads(project.read_text())
    config["overlay_root"] = "local://overlay"  # relative: to the folder avae starts in
    project.write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path / "overlay")
    assert main(["project", str(project)]) == 2
    error = capsys.readouterr().err
    assert f"{project}: its overlay_root overlay is no folder here" in error
    assert str(tmp_path / "overlay") in error  # where a relative root was looked for
    monkeypatch.chdir(tmp_path)
    assert main(["project", str(project)]) == 0
    assert capsys.readouterr().out.startswith("3 tomograms, 20 particles")
    # runs in a static root under the home folder; an overlay root not made until picks are
    monkeypatch.setenv("HOME", str(tmp_path))
    config["static_root"] = "local://~/overlay"
    config["overlay_root"] = f"local://{tmp_path / 'not_yet'}"
    project.write_text(json.dumps(config))
    assert main(["project", str(project)]) == 0
    assert capsys.readouterr().out.startswith("3 tomograms, 20 particles")


def test_avae_embed_on_a_copick_project_gives_the_latents_of_the_same_tomograms_in_mrc(
    project, simulated, tmp_path
):
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(project), "--object", "ribosome", "--out", str(out)]) == 0
    embedded = pd.read_csv(out)  # a project table: each row names its tomogram
    assert set(embedded["copick_object"]) == {"ribosome"}
    for name, result in simulated.items():
        mrc = write_tomogram(tmp_path / f"{name}.mrc", result.tomogram, 10.0)
        ribosomes = result.particles[result.particles[CLASS_NAME] == "ribosome"]
        star = tmp_path / f"{name}.csv"
        ribosomes.to_csv(star, index=False)
        reference = tmp_path / f"{name}_embedded.csv"
        assert main(["embed", str(mrc), str(star), "--out", str(reference)]) == 0
        expected = read_particles(reference).sort_values(list(AXES))
        mine = embedded[embedded[TOMO_NAME] == name].sort_values(list(AXES))
        columns = latent_columns(expected)
        np.testing.assert_allclose(mine[columns], expected[columns], atol=1e-4)


def test_a_selection_goes_back_as_picks_copick_reads_and_nothing_is_overwritten(project):
    opened = open_project([project], pick_sets=PickSetChoice(object_name="ribosome"))
    selection = opened.particles.iloc[[0, 2, 3]].copy()
    selection.loc[selection.index[1], list(ANGLES)] = np.nan  # as a hand pick beside the others
    session = next_session(project, "unknown-large", "avae")
    assert session == "0"
    written = write_copick_picks(project, opened, {session: selection}, "unknown-large")
    runs = selection[TOMO_NAME].nunique()
    assert written == [f"unknown-large by avae, session 0: 3 picks in {runs} run{'s' * (runs > 1)}"]

    root = copick.from_file(str(project))
    assert root.get_object("unknown-large").is_particle  # added to the configuration
    assert "unknown-large" in json.loads(project.read_text())["pickable_objects"][-1]["name"]
    back = []
    for run in root.runs:
        for picks in run.get_picks(object_name="unknown-large", user_id="avae", session_id="0"):
            points, transforms = picks.numpy()
            zyx = pd.DataFrame(points[:, ::-1] / 10.0, columns=list(AXES))
            back.append(zyx.assign(matrix=list(transforms[:, :3, :3])))
    back = pd.concat(back).sort_values(list(AXES)).reset_index(drop=True)
    mine = selection.sort_values(list(AXES)).reset_index(drop=True)
    np.testing.assert_allclose(back[list(AXES)], mine[list(AXES)], atol=1e-6)
    expected = np.linalg.inv(relion_matrix(mine[list(ANGLES)].fillna(0.0).to_numpy()))
    np.testing.assert_allclose(np.stack(back["matrix"]), expected, atol=1e-6)
    assert sum(np.allclose(m, np.eye(3)) for m in back["matrix"]) == 1  # the one without angles
    # the curator's picks are untouched, and the same session is never written twice
    assert len(open_project([project], pick_sets=PickSetChoice(user="curator")).particles) == 20
    with pytest.raises(
        AffinityVAEError, match="already has picks of unknown-large by avae, session 0"
    ):
        write_copick_picks(project, opened, {"0": selection}, "unknown-large")
    assert next_session(project, "unknown-large", "avae") == "1"


def test_each_cluster_goes_back_in_its_own_session(project):
    opened = open_project([project], pick_sets=PickSetChoice(user="curator"))
    table = opened.particles.assign(cluster=np.arange(20) % 3 - 1)  # -1: HDBSCAN's noise
    parts = copick_sessions(table, EACH_CLUSTER, np.zeros(0, int), "7")
    assert sorted(parts) == ["7-cluster0", "7-cluster1", "7-unclustered"]
    write_copick_picks(project, opened, parts, "ribosome")
    back = open_project([project], pick_sets=PickSetChoice(user="avae")).particles
    assert back.groupby("copick_session").size().to_dict() == {
        "7-cluster0": 7,
        "7-cluster1": 6,
        "7-unclustered": 7,
    }
    dotted = copick_sessions(table, EACH_CLUSTER, np.zeros(0, int), "v1.2")  # not a suffix
    assert sorted(dotted) == ["v1.2-cluster0", "v1.2-cluster1", "v1.2-unclustered"]
    typed = copick_sessions(table, EACH_CLUSTER, np.zeros(0, int), "my_session")
    with pytest.raises(AffinityVAEError, match="'my_session-unclustered' could be 'my-session-"):
        write_copick_picks(project, opened, typed, "ribosome")  # not renamed without a word


def test_avae_simulate_writes_a_copick_project(tmp_path, capsys):
    printed = simulated_project_listing(tmp_path / "copick", "copick", "config.json", capsys)
    assert printed.startswith("2 tomograms, 8 particles")
    assert "TS_02: 4 particles, 48 x 96 x 96 voxels at 10 Å" in printed
    assert "by simulation, session 0:" in printed
