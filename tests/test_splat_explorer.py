"""A splat model in the explorer, as a person uses it: embed with a splat checkpoint, decode a
particle into a volume and its Gaussians as points, turn them with the rot, tilt and psi sliders,
render at a larger box, and export the model's angles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from qtpy.QtCore import Qt

from conftest import write_mrc
from napari_affinity_vae.demo import add_dock_widgets
from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.io.orientation import angles_to_matrices
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.model.checkpoint import ModelCard, save_checkpoint
from napari_affinity_vae.model.inference import splats
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.splats import pose_angles
from napari_affinity_vae.operations.export import angles_from_model
from napari_affinity_vae.schema import ANGLES, AXES, MODEL_ANGLES
from napari_affinity_vae.widgets.decode import AT_PARTICLE, PARTICLE
from napari_affinity_vae.widgets.embed import CHECKPOINT
from napari_affinity_vae.widgets.export import ALL
from napari_affinity_vae.widgets.viewer_session import session_for
from test_clicks import click, messages, shown, tick, type_into

WAIT_MS = 120_000
VOXEL = 10.0  # Angstrom, the tomogram's and the models'
SPLATS = 40
BOX = 32
PICKS = pd.DataFrame(  # three particles with angles from another tool
    {
        "z": [20.0, 20.0, 20.0],
        "y": [20.0, 40.0, 20.0],
        "x": [20.0, 40.0, 40.0],
        "rot": [10.0, -120.0, 75.0],
        "tilt": [30.0, 95.0, 160.0],
        "psi": [-45.0, 170.0, 5.0],
    }
)


def checkpoint(path: Path, architecture: Architecture) -> Path:
    """A randomly initialised (seeded) model saved as a checkpoint."""
    torch.manual_seed(0)
    card = ModelCard(architecture, VOXEL, classes=["a", "b"], affinity=[[1.0, 0.0], [0.0, 1.0]])
    return save_checkpoint(AffinityVAE(architecture), card, path)[0]


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """A 40 x 60 x 60 tomogram with three dark blobs, their picks, a splat and a conv model."""
    data = np.random.default_rng(0).normal(0, 1, (40, 60, 60)).astype(np.float32)
    for z, y, x in PICKS[list(AXES)].to_numpy(dtype=int):
        data[z - 3 : z + 4, y - 3 : y + 4, x - 3 : x + 4] -= 4
    splat = Architecture(box=BOX, decoder="splat", pose_dims=4, splats=SPLATS)
    return {
        "tomogram": write_mrc(tmp_path / "small.mrc", data, voxel_size=VOXEL),
        "picks": write_particles(PICKS, tmp_path / "picks.csv"),
        "one pick": write_particles(PICKS.iloc[:1], tmp_path / "one.csv"),
        "splat": checkpoint(tmp_path / "splat.safetensors", splat),
        "conv": checkpoint(tmp_path / "conv.safetensors", Architecture(box=BOX)),
    }


@pytest.fixture
def explorer(make_napari_viewer):
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    return viewer, widgets, session_for(viewer)


def open_picks(qtbot, widgets, files: dict[str, Path], picks: str = "picks") -> None:
    """Open the tomogram and import picks by typing their paths and clicking."""
    type_into(qtbot, widgets["Tomogram"].file, str(files["tomogram"]))
    click(qtbot, widgets["Tomogram"].open_button)
    type_into(qtbot, widgets["Particles"].file, str(files[picks]))
    click(qtbot, widgets["Particles"].import_button)


def embed_with(qtbot, widgets, session, model: Path) -> None:
    """Choose a checkpoint in the Embed dock and click Run; wait for the clusters."""
    embed = widgets["Embed"]
    embed.source.value = CHECKPOINT
    type_into(qtbot, embed.checkpoint, str(model))
    embed.projection.value = "PCA"
    embed.k.value = 2
    click(qtbot, embed.run_button)
    qtbot.waitUntil(lambda: embed.task.running, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: not embed.task.running and session.clusters is not None, timeout=WAIT_MS
    )


def decode_particle(qtbot, widgets, session, row: int = 0) -> None:
    """Select one particle and decode it at its place; wait for the decode."""
    decode = widgets["Decode"]
    session.select([row])
    decode.source.value, decode.placement.value = PARTICLE, AT_PARTICLE
    click(qtbot, decode.decode_button)
    settle(qtbot, decode)


def settle(qtbot, decode) -> None:
    """Wait until the Decode dock has shown the newest decode asked for."""
    qtbot.waitUntil(lambda: not decode.decoding.running, timeout=WAIT_MS)


def slider(decode, label: str):
    return next(s for s in decode.sliders if s.label == label)


def world(layer, data: np.ndarray) -> np.ndarray:
    """Points' (z, y, x) world coordinates in Angstrom."""
    return np.asarray(layer.translate)[-3:] + data[:, -3:] * np.asarray(layer.scale)[-3:]


@pytest.fixture
def splat_explorer(explorer, files, qtbot):
    viewer, widgets, session = explorer
    open_picks(qtbot, widgets, files)
    embed_with(qtbot, widgets, session, files["splat"])
    return viewer, widgets, session


def test_a_splat_model_gives_model_angles_and_decodes_points_on_the_volume(splat_explorer, qtbot):
    viewer, widgets, session = splat_explorer
    table = session.particles
    assert np.allclose(table[list(MODEL_ANGLES)], pose_angles(session.pose))
    assert np.allclose(table[list(ANGLES)], PICKS[list(ANGLES)])  # imported ones untouched
    decode = widgets["Decode"]
    assert [s.label for s in decode.sliders][-3:] == ["rot", "tilt", "psi"]
    assert not any(s.label.startswith("pose") for s in decode.sliders)
    assert shown(decode.render_box) and decode.render_box.value == BOX

    decode_particle(qtbot, widgets, session, row=1)
    angles = [slider(decode, a).value for a in ("rot", "tilt", "psi")]
    assert np.allclose(angles, table.loc[1, list(MODEL_ANGLES)], atol=1e-3)  # the particle's
    volume, points = viewer.layers["decoded"], viewer.layers["decoded splats"]
    assert volume.data.shape == (BOX,) * 3 and len(points.data) == SPLATS
    assert points.ndim == 3 and tuple(points.scale) == tuple(volume.scale)
    particle = table.loc[1, list(AXES)].to_numpy(dtype=float) * VOXEL
    centre = world(volume, np.array([[BOX // 2] * 3]))[0]
    assert np.allclose(centre, particle)  # the volume's centre voxel on the particle
    expected = splats(session.model, session.latent[1].copy(), session.pose[1].copy(), VOXEL)
    assert np.allclose(world(points, points.data), particle + expected.centres[0], atol=1e-3)
    assert np.allclose(points.size * volume.scale[-1], 2 * expected.widths[0], rtol=1e-4)
    relative = expected.weights[0] / expected.weights[0].max()
    assert np.allclose(points.face_color[:, 3], relative**2, atol=1e-4)  # the heaviest opaque
    assert "decoded splats" not in [c.name for c in widgets["Particles"].layer.choices if c]


def test_rotation_sliders_turn_the_splats_about_the_volume_centre(splat_explorer, qtbot):
    viewer, widgets, session = splat_explorer
    decode = widgets["Decode"]
    decode_particle(qtbot, widgets, session)
    volume, points = viewer.layers["decoded"], viewer.layers["decoded splats"]
    centre = world(volume, np.array([[BOX // 2] * 3]))[0]
    for name in ("rot", "tilt", "psi"):  # no rotation
        slider(decode, name).value = 0.0
    settle(qtbot, decode)
    unturned, unturned_volume = world(points, points.data) - centre, volume.data.copy()
    weights = points.face_color[:, 3].copy()

    turn = {"rot": 30.0, "tilt": 50.0, "psi": -70.0}
    for name, value in turn.items():
        slider(decode, name).value = value
    settle(qtbot, decode)
    turned = world(points, points.data) - centre
    rotation = angles_to_matrices(np.array([list(turn.values())]))[0]  # on (x, y, z)
    expected = (unturned[:, ::-1] @ rotation.T)[:, ::-1]
    assert np.allclose(turned, expected, atol=1e-2)
    assert not np.allclose(volume.data, unturned_volume, atol=1e-3)  # the volume turned too
    assert np.allclose(points.face_color[:, 3], weights)  # the same splats, turned


def test_render_at_a_larger_box_keeps_the_physical_size(splat_explorer, qtbot):
    viewer, widgets, session = splat_explorer
    decode = widgets["Decode"]
    decode_particle(qtbot, widgets, session)
    volume, points = viewer.layers["decoded"], viewer.layers["decoded splats"]
    extent, placed = volume.extent.world.copy(), world(points, points.data)
    sizes = points.size * points.scale[-1]
    type_into(qtbot, decode.render_box, "64")
    qtbot.keyClick(decode.render_box.native, Qt.Key.Key_Return)
    settle(qtbot, decode)
    assert decode.render_box.value == 64
    assert volume.data.shape == (64,) * 3 and volume.scale[-1] == pytest.approx(VOXEL / 2)
    span = lambda e: e[1] - e[0]  # noqa: E731
    assert np.allclose(span(volume.extent.world), span(extent), atol=VOXEL)
    assert np.allclose(world(points, points.data), placed, atol=1e-3)  # the same splats
    assert np.allclose(points.size * points.scale[-1], sizes, rtol=1e-4)
    assert "64^3 at 5 Å/voxel" in decode.status.value


def test_a_traversal_steps_the_volumes_and_their_splats_together(splat_explorer, qtbot):
    viewer, widgets, _session = splat_explorer
    decode = widgets["Decode"]
    decode.traverse(0)  # what a listed dimension's button does
    settle(qtbot, decode)
    stack, points = viewer.layers["traversal latent 0"], viewer.layers["traversal latent 0 splats"]
    steps = stack.data.shape[0]
    assert points.ndim == 4 and len(points.data) == steps * SPLATS
    assert np.array_equal(np.unique(points.data[:, 0]), np.arange(steps))
    assert tuple(points.scale) == tuple(stack.scale) and tuple(points.translate) == tuple(
        stack.translate
    )


def test_a_conv_model_shows_no_splats_no_rotation_sliders_and_no_render_at(
    splat_explorer, files, qtbot
):
    viewer, widgets, session = splat_explorer
    decode = widgets["Decode"]
    decode_particle(qtbot, widgets, session)
    assert "decoded splats" in viewer.layers
    embed_with(qtbot, widgets, session, files["conv"])
    assert not any(c in session.particles for c in MODEL_ANGLES)  # stale with the splat model
    assert [s.label for s in decode.sliders][-1] == "pose 0"
    assert not any(s.label in ("rot", "tilt", "psi") for s in decode.sliders)
    assert not shown(decode.render_box)
    decode_particle(qtbot, widgets, session)
    assert viewer.layers["decoded"].data.shape == (BOX,) * 3
    assert "decoded splats" not in viewer.layers  # the splat model's points went with it
    assert not shown(widgets["Export"].model_angles)


def test_export_writes_the_models_angles_and_leaves_the_table_alone(
    splat_explorer, qtbot, tmp_path
):
    _, widgets, session = splat_explorer
    export = widgets["Export"]
    export.what.value = ALL
    model = session.particles[list(MODEL_ANGLES)].to_numpy()
    type_into(qtbot, export.file, str(tmp_path / "imported.csv"))
    assert shown(export.model_angles) and not export.model_angles.value
    click(qtbot, export.export_button)
    back = read_particles(tmp_path / "imported.csv")
    assert np.allclose(back[list(ANGLES)], PICKS[list(ANGLES)])  # the imported angles
    assert np.allclose(back[list(MODEL_ANGLES)], model, atol=1e-3)  # and the model's beside

    tick(qtbot, export.model_angles)
    assert export.model_angles.value
    for name in ("model.csv", "model.star", "model.tbl"):
        type_into(qtbot, export.file, str(tmp_path / name))
        click(qtbot, export.export_button)
        back = read_particles(tmp_path / name, voxel_size=VOXEL)
        written = angles_to_matrices(back[list(ANGLES)].to_numpy(dtype=float))
        assert np.allclose(written, angles_to_matrices(model), atol=1e-4), name
        assert not any(c in back for c in MODEL_ANGLES)  # written as the angles, once
    assert np.allclose(session.particles[list(ANGLES)], PICKS[list(ANGLES)])  # untouched
    assert np.allclose(session.particles[list(MODEL_ANGLES)], model)
    export.format.value = "TomoTwin coords"  # no angles to write
    assert not shown(export.model_angles)


def test_one_particle_decodes_with_its_splats(explorer, files, qtbot):
    viewer, widgets, session = explorer
    open_picks(qtbot, widgets, files, "one pick")
    embed_with(qtbot, widgets, session, files["splat"])
    assert len(session.particles) == 1 and session.particles[list(MODEL_ANGLES)].notna().all(None)
    decode = widgets["Decode"]
    assert all(s.min <= s.value <= s.max for s in decode.sliders)
    decode_particle(qtbot, widgets, session)
    assert len(viewer.layers["decoded splats"].data) == SPLATS


def test_decode_with_nothing_selected_says_so_and_napari_carries_on(
    splat_explorer, qtbot, notifications
):
    viewer, widgets, session = splat_explorer
    decode = widgets["Decode"]
    session.clear_selection()
    click(qtbot, decode.decode_button)  # the selection's mean, of no particle
    assert any("selection is empty" in m for m in messages(notifications))
    assert "decoded" not in viewer.layers and "decoded splats" not in viewer.layers
    decode_particle(qtbot, widgets, session, row=2)  # and then it decodes
    assert len(viewer.layers["decoded splats"].data) == SPLATS


def test_the_models_angles_are_refused_for_particles_it_did_not_embed():
    rows = PICKS.assign(**{angle: [1.0, np.nan, 2.0] for angle in MODEL_ANGLES})
    with pytest.raises(AffinityVAEError, match="1 particle to export has no angles"):
        angles_from_model(rows)
    turned = angles_from_model(rows.iloc[[0, 2]])
    assert turned[list(ANGLES)].to_numpy().tolist() == [[1.0] * 3, [2.0] * 3]
    assert np.allclose(rows[list(ANGLES)], PICKS[list(ANGLES)])  # a copy was turned


def test_the_bundled_splat_model_is_chosen_in_the_embed_dock(explorer, files, qtbot):
    viewer, widgets, session = explorer
    open_picks(qtbot, widgets, files)
    embed = widgets["Embed"]
    box = embed.source.native
    box.setCurrentIndex(box.findText("Bundled splat model"))  # as a person picks it from the list
    assert session.card.architecture.decoder == "splat" and "pose 4" in embed.card.value
    embed.projection.value, embed.k.value = "PCA", 2
    click(qtbot, embed.run_button)
    qtbot.waitUntil(
        lambda: session.clusters is not None and not embed.task.running, timeout=WAIT_MS
    )
    assert session.particles[list(MODEL_ANGLES)].notna().all().all()
    decode_particle(qtbot, widgets, session)
    assert len(viewer.layers["decoded splats"].data) == session.card.architecture.splats
    assert [s.label for s in widgets["Decode"].sliders][-3:] == ["rot", "tilt", "psi"]


def test_the_models_angles_replace_a_relion5_subtomogram_orientation():
    subtomogram = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
    rows = PICKS.assign(**{a: 30.0 for a in MODEL_ANGLES}, **{c: 90.0 for c in subtomogram})
    turned = angles_from_model(rows)
    # the model's angles are in the tomogram's frame: RELION must not turn them again
    assert (turned[list(subtomogram)] == 0).all().all()
    assert (turned[list(ANGLES)] == 30.0).all().all()
    assert (rows[list(subtomogram)] == 90.0).all().all()  # the table keeps its own


def test_decoding_after_choosing_another_model_without_embedding_says_so(
    explorer, files, qtbot, notifications
):
    viewer, widgets, session = explorer
    open_picks(qtbot, widgets, files)
    embed_with(qtbot, widgets, session, files["conv"])
    type_into(qtbot, widgets["Embed"].checkpoint, str(files["splat"]))  # chosen, not run
    assert session.card.architecture.decoder == "splat"
    session.select([0])
    click(qtbot, widgets["Decode"].decode_button)
    assert any("embedded with another model" in m for m in messages(notifications))
    assert "decoded splats" not in viewer.layers
