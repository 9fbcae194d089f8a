"""Template matching: the rotation grid, the threshold from the false-alarm rate, the particles of
the templated classes found on a fresh seed with their rotations, refined at full size, in the
CLI and the Particles dock (with Cancel)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt
from scipy.spatial.transform import Rotation

from napari_affinity_vae.cli import main
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.particles import templates
from napari_affinity_vae.particles.matching import match_picks, radii_of
from napari_affinity_vae.particles.templates import (
    MatchSettings,
    Template,
    match_steps,
    refine_picks,
    rotation_grid,
    search_binning,
    work,
)
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME, TEMPLATE
from napari_affinity_vae.simulate.molecules import extent, molecule_map, symmetry
from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram
from test_clicks import WAIT_MS, click, messages, tick, type_into

TEMPLATED = ("ribosome", "proteasome")
FRESH = Simulation(
    shape=(100, 200, 200),
    particles=40,
    classes=("ribosome", "proteasome", "chaperonin", "globular"),
    seed=21,  # not a seed anything was tuned on
    name="fresh",
)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh simulated tomogram of four classes, and the true maps of two as template files."""
    folder = tmp_path_factory.mktemp("matching")
    result = simulate_tomogram(FRESH)
    tomogram = write_tomogram(folder / "fresh.mrc", result.tomogram, 10.0)
    maps = [write_tomogram(folder / f"{n}.mrc", molecule_map(n, 10.0), 10.0) for n in TEMPLATED]
    return result, tomogram, maps, folder


@pytest.mark.parametrize(("symmetry", "order"), [("C1", 1), ("C7", 7), ("D7", 14), ("T", 12)])
def test_the_rotation_grid_covers_rotations_at_its_step_up_to_the_symmetry(symmetry, order):
    grid = rotation_grid(30.0, symmetry)
    assert np.allclose(grid[0].as_matrix(), np.eye(3))
    assert len(grid) == pytest.approx(561 / order, rel=0.2)
    group = Rotation.create_group(symmetry) if order > 1 else Rotation.identity(1)
    equivalents = Rotation.concatenate([element * grid for element in group])
    probes = Rotation.random(300, random_state=0)
    nearest = [np.degrees((equivalents * probe.inv()).magnitude().min()) for probe in probes]
    assert np.max(nearest) < 30.0  # every orientation within a step of a grid rotation's twin


def test_a_symmetry_that_is_no_point_group_is_refused(tmp_path, capsys):
    tomogram = write_tomogram(tmp_path / "t.mrc", np.zeros((32, 32, 32), np.float32), 10.0)
    ribosome = write_tomogram(tmp_path / "ribosome.mrc", molecule_map("ribosome", 10.0), 10.0)
    args = ["pick", str(tomogram), "--templates", str(ribosome), "--symmetry", "C0"]
    assert main([*args, "--out", str(tmp_path / "picks.star")]) != 0
    assert "symmetry 'C0' is not a point group" in capsys.readouterr().err


def test_the_score_map_lies_where_the_tomogram_s_header_places_the_tomogram(tmp_path):
    """A tomogram cut out of a larger one (IMOD's trimvol) has an origin: the score map took 0
    and lay elsewhere in ChimeraX or IMOD."""
    noise = np.random.default_rng(0).normal(size=(40, 48, 48)).astype(np.float32)
    tomogram = write_tomogram(tmp_path / "cut.mrc", noise, 10.0, origin=(100.0, 200.0, -50.0))
    globular = write_tomogram(tmp_path / "g.mrc", molecule_map("globular", 10.0), 10.0)
    scores = tmp_path / "scores.mrc"
    args = ["pick", str(tomogram), "--templates", str(globular), "--angular-step", "90"]
    assert main([*args, "--out", str(tmp_path / "p.star"), "--score-map", str(scores)]) == 0
    with mrcfile.open(scores) as mrc:
        assert mrc.data.shape == noise.shape  # not binned: the first voxel is the tomogram's
        origin = mrc.header.origin
        assert (float(origin.x), float(origin.y), float(origin.z)) == (100.0, 200.0, -50.0)
    # picks that cannot be written (a name a STAR file cannot hold) leave no score map behind
    quoted = write_tomogram(tmp_path / "TS'01.mrc", noise, 10.0)
    args = ["pick", str(quoted), "--templates", str(globular), "--angular-step", "90"]
    other = tmp_path / "other.mrc"
    assert main([*args, "--out", str(tmp_path / "q.star"), "--score-map", str(other)]) == 2
    assert not other.exists() and not (tmp_path / "q.star").exists()


def test_on_noise_the_threshold_lets_through_about_the_false_alarms_asked_for():
    noise = np.random.default_rng(3).normal(size=(48, 96, 96)).astype(np.float32)
    template = Template("ribosome", molecule_map("ribosome", 10.0))
    settings = MatchSettings(voxel_size=10.0, angular_step=45.0, false_alarms=1.0)
    result = run_steps(match_steps(noise, [template], settings), 1, "", None)
    assert len(result.picks) <= 3
    assert result.picks.attrs["threshold"] > 4  # noise deviations, from the voxels x rotations


def test_avae_pick_with_templates_finds_the_templated_particles_with_their_rotations(fresh):
    result, tomogram, maps, folder = fresh
    out, scores = folder / "picks.star", folder / "scores.mrc"
    args = ["pick", str(tomogram), "--templates", *map(str, maps), "--symmetry", "C1", "D7"]
    assert main([*args, "--out", str(out), "--score-map", str(scores)]) == 0
    picks = read_particles(out)
    assert set(picks[TEMPLATE]) <= set(TEMPLATED) and scores.is_file()
    with mrcfile.open(scores) as mrc:  # a binned voxel's centre: (binning - 1) / 2 voxels in
        binning = 200 // mrc.data.shape[1]
        assert binning > 1 and float(mrc.voxel_size.x) == pytest.approx(10.0 * binning)
        assert float(mrc.header.origin.z) == pytest.approx((binning - 1) / 2 * 10.0)
    truth = result.particles
    for name in TEMPLATED:
        mine, theirs = truth[truth[CLASS_NAME] == name], picks[picks[TEMPLATE] == name]
        found = match_picks(
            theirs[list(AXES)].to_numpy(), mine[list(AXES)].to_numpy(), radii_of(mine, 10, extent)
        )
        assert (found >= 0).mean() >= 0.95, name
        if name == "ribosome":  # no symmetry: the rotation is the particle's, within a step
            true = Rotation.from_euler("ZYZ", mine[list(ANGLES)].to_numpy(), degrees=True)
            best = Rotation.from_euler(
                "ZYZ", theirs[list(ANGLES)].to_numpy()[found[found >= 0]], degrees=True
            )
            error = np.degrees((true[found >= 0].inv() * best).magnitude())
            assert np.median(error) <= 10.0  # refined: a third of the 30 degree step


def test_a_binned_search_refined_at_full_size_gives_angles_within_a_fraction_of_the_step(fresh):
    result, *_ = fresh
    templates = [
        Template("ribosome", molecule_map("ribosome", 10.0)),
        Template("proteasome", molecule_map("proteasome", 10.0), "D7"),
    ]
    settings = MatchSettings(voxel_size=10.0, angular_step=30.0)
    assert search_binning(templates, settings) == 2  # searched at 20 A, refined at 10 A
    steps, counts = match_steps(result.tomogram, templates, settings), []
    while True:
        try:
            counts.append(next(steps))
        except StopIteration as finished:
            picks = finished.value.picks
            break
    assert counts == sorted(counts) and counts[-1] == work(
        result.tomogram.shape, templates, settings
    )
    truth = result.particles
    for name in ("ribosome", "proteasome"):
        mine, theirs = truth[truth[CLASS_NAME] == name], picks[picks[TEMPLATE] == name]
        found = match_picks(
            theirs[list(AXES)].to_numpy(), mine[list(AXES)].to_numpy(), radii_of(mine, 10, extent)
        )
        hit = found >= 0
        assert hit.mean() >= 0.95, name
        true = Rotation.from_euler("ZYZ", mine[list(ANGLES)].to_numpy()[hit], degrees=True)
        best = Rotation.from_euler("ZYZ", theirs[list(ANGLES)].to_numpy()[found[hit]], degrees=True)
        error = np.min([(true.inv() * s.inv() * best).magnitude() for s in symmetry(name)], axis=0)
        # the grid alone leaves up to 30 degrees (median 18 here) and centres 1-3 voxels off
        assert np.degrees(np.median(error)) <= 6.0 and np.degrees(error.max()) <= 12.0, name
        offsets = mine[list(AXES)].to_numpy()[hit] - theirs[list(AXES)].to_numpy()[found[hit]]
        assert np.median(np.linalg.norm(offsets, axis=1)) <= 1.0, name


@pytest.mark.parametrize("count", [1, 2])
def test_refined_picks_at_the_tomogram_s_corners_stay_inside_it(count):
    noise = np.random.default_rng(5).normal(size=(30, 36, 40)).astype(np.float16)
    corners = pd.DataFrame(
        [[0.0, 0.0, 0.0], [29.0, 35.0, 39.0]][:count], columns=list(AXES)
    ).assign(template="ribosome", rot=10.0, tilt=20.0, psi=30.0)
    templates = [Template("ribosome", molecule_map("ribosome", 10.0))]
    settings = MatchSettings(voxel_size=10.0, angular_step=60.0)
    refined = run_steps(refine_picks(noise, corners, templates, settings, 2), 1, "", None)
    assert len(refined) == count and set(refined[TEMPLATE]) == {"ribosome"}
    zyx = refined[list(AXES)].to_numpy()
    assert np.all(zyx >= 0) and np.all(zyx <= np.subtract(noise.shape, 1))
    assert np.isfinite(refined[list(ANGLES)].to_numpy()).all()


@pytest.mark.parametrize("largest", [64, 20])  # refined at 10 A; binned by 2 as memory asks
def test_picks_off_by_a_step_are_refined_onto_their_particles(fresh, monkeypatch, largest):
    monkeypatch.setattr(templates, "MAX_REFINE_BOX", largest)
    result, *_ = fresh
    truth = result.particles[result.particles[CLASS_NAME] == "ribosome"]
    true = Rotation.from_euler("ZYZ", truth[list(ANGLES)].to_numpy(), degrees=True)
    off = Rotation.from_rotvec(np.tile([0.0, np.radians(20), 0.0], (len(truth), 1))) * true
    picks = truth[list(AXES)].round() + np.array([1.0, -1.0, 1.0])  # the grid's and a binning's
    angles = dict(zip(ANGLES, off.as_euler("ZYZ", degrees=True).T, strict=True))
    picks = picks.assign(template="ribosome", **angles)
    ribosome = [Template("ribosome", molecule_map("ribosome", 10.0))]
    settings = MatchSettings(voxel_size=10.0, angular_step=30.0)
    assert templates.refinement_binning(ribosome, 4) == (1 if largest == 64 else 2)
    refined = run_steps(refine_picks(result.tomogram, picks, ribosome, settings, 4), 1, "", None)
    found = Rotation.from_euler("ZYZ", refined[list(ANGLES)].to_numpy(), degrees=True)
    error = np.degrees((true.inv() * found).magnitude())
    assert np.median(error) <= 8.0  # from 20
    distance = np.linalg.norm(refined[list(AXES)].to_numpy() - truth[list(AXES)].to_numpy(), axis=1)
    assert np.median(distance) <= (1.0 if largest == 64 else 1.5)  # from 1.7; voxels of 20 A


def test_the_particles_dock_matches_the_templates_typed_in_and_cancel_stops_it(
    explorer, qtbot, fresh
):
    viewer, widgets, session = explorer
    _, tomogram, maps, _ = fresh
    type_into(qtbot, widgets["Tomogram"].file, str(tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    particles = widgets["Particles"]
    type_into(qtbot, particles.templates, ", ".join(str(m) for m in maps[:1]))
    particles.angular_step.value = 45.0
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: particles.task.running, timeout=WAIT_MS)
    click(qtbot, particles.cancel_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert "fresh template scores" not in viewer.layers and len(session.particles) == 0

    tick(qtbot, particles.refine)  # unticked: the search's own grid rotations
    assert particles.refine.value is False
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert len(session.particles) >= 8 and set(session.particles[TEMPLATE]) == {"ribosome"}
    found = Rotation.from_euler("ZYZ", session.particles[list(ANGLES)].to_numpy(), degrees=True)
    grid = rotation_grid(45.0)
    assert all(np.degrees((grid * r.inv()).magnitude().min()) < 0.01 for r in found)
    scores = viewer.layers["fresh template scores"]
    binning = 200 // scores.data.shape[1]
    assert scores.scale[0] == pytest.approx(10.0 * binning)
    voxel = widgets["Tomogram"].voxel_size
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "20")  # a corrected voxel size
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    assert scores.scale[0] == pytest.approx(20.0 * binning)  # the map stays over its tomogram
    assert scores.translate[0] == pytest.approx((binning - 1) / 2 * 20.0)
    # the score map lies over the tomogram; the particles still belong to the tomogram
    assert session.tomogram.name == "fresh" and widgets["Tomogram"].tomogram_layer.name == "fresh"
    assert particles.tomogram_label.value.startswith("fresh: 100 x 200 x 200")
    # another tomogram of the same name: this map is not drawn over it, and comes back with its own
    other = tomogram.parent / "elsewhere" / tomogram.name
    other.parent.mkdir(exist_ok=True)
    other.write_bytes(tomogram.read_bytes())
    first = widgets["Tomogram"].tomogram_layer
    type_into(qtbot, widgets["Tomogram"].file, str(other))
    click(qtbot, widgets["Tomogram"].open_button)
    assert not scores.visible and not first.visible
    widgets["Tomogram"].layer.value = first
    assert scores.visible and scores.scale[0] == pytest.approx(20.0 * binning)


@pytest.mark.parametrize(
    "tomogram",
    [
        np.zeros((40, 40, 40), np.float32),  # blank: no noise to measure
        np.random.default_rng(0).integers(0, 255, (24, 30, 30)).astype(np.uint8),  # tiny uint8
    ],
)
def test_a_blank_or_a_tiny_uint8_tomogram_gives_no_picks_and_no_error(tomogram):
    template = Template("ribosome", molecule_map("ribosome", 10.0))
    settings = MatchSettings(voxel_size=10.0, angular_step=60.0)
    result = run_steps(match_steps(tomogram, [template], settings), 1, "", None)
    assert len(result.picks) == 0 and np.isfinite(result.picks.attrs["threshold"])


def _ball_map(folder, name: str, across: int):
    """A map of a ball ``across`` voxels wide at 10 Å, written as ``name``."""
    z, y, x = np.indices((across + 4,) * 3) - (across + 4) // 2
    ball = (z**2 + y**2 + x**2 <= (across / 2) ** 2).astype(np.float32)
    return write_tomogram(folder / name, ball, 10.0)


def test_a_template_larger_than_the_tomogram_is_refused_by_name(tmp_path, capsys):
    noise = np.random.default_rng(0).normal(size=(20, 24, 24)).astype(np.float32)
    tomogram = write_tomogram(tmp_path / "small.mrc", noise, 10.0)
    fits, too_large = _ball_map(tmp_path, "fits.mrc", 16), _ball_map(tmp_path, "huge.mrc", 40)
    out = tmp_path / "picks.star"
    args = ["pick", str(tomogram), "--angular-step", "90", "--out", str(out), "--templates"]
    assert main([*args, str(fits), str(too_large)]) == 2
    err = capsys.readouterr().err
    assert "huge.mrc spans 40 voxels" in err and "small.mrc (24 voxels)" in err
    assert "fits.mrc" not in err and not out.exists()
    assert main([*args, str(fits)]) == 0 and out.exists()


def test_the_particles_dock_names_a_template_larger_than_the_tomogram(
    explorer, qtbot, tmp_path, notifications
):
    _, widgets, session = explorer
    noise = np.random.default_rng(0).normal(size=(20, 24, 24)).astype(np.float32)
    tomogram = write_tomogram(tmp_path / "small.mrc", noise, 10.0)
    type_into(qtbot, widgets["Tomogram"].file, str(tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    particles = widgets["Particles"]
    type_into(qtbot, particles.templates, str(_ball_map(tmp_path, "huge.mrc", 40)))
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    [shown] = messages(notifications)
    assert "huge.mrc spans 40 voxels" in shown and "Check the voxel size" in shown
    assert len(session.particles) == 0 and particles.pick_button.enabled


def test_a_tomogram_too_thin_for_the_search_s_binning_is_refused(tmp_path):
    """One plane binned twice is none: the search failed with 'float division by zero'."""
    from napari_affinity_vae.errors import TomogramFileError
    from napari_affinity_vae.io.tomogram import open_tomogram
    from napari_affinity_vae.operations.pick import plan_match

    rng = np.random.default_rng(0)
    thin = write_tomogram(tmp_path / "thin.mrc", rng.normal(size=(1, 64, 64)), 10.0)
    z, y, x = np.indices((20, 20, 20)) - 10
    ball = write_tomogram(tmp_path / "ball.mrc", (z**2 + y**2 + x**2 <= 64) * 1.0, 10.0)
    settings = MatchSettings(voxel_size=10.0, angular_step=90.0)
    with pytest.raises(TomogramFileError, match=r"thin.mrc: it is 1 x 64 x 64 voxels: too thin"):
        plan_match(open_tomogram(thin), [ball], settings)
