"""The explorer in napari: pick, embed, select in the scatter and the viewer, decode, export."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari.layers import Layer
from sklearn.metrics import adjusted_rand_score

from napari_affinity_vae._sample_data import sample_layers
from napari_affinity_vae.demo import DOCK_WIDGETS, PLUGIN, add_dock_widgets
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.tomogram import Tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.operations.analyse import analyse_steps
from napari_affinity_vae.operations.defaults import CLUSTERS, DIAMETERS
from napari_affinity_vae.particles.picking import PickSettings, pick
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import CLUSTER, EMBEDDING, latent_columns
from napari_affinity_vae.widgets.decode import CENTRE
from napari_affinity_vae.widgets.export import ALL, EACH_CLUSTER, SELECTED
from napari_affinity_vae.widgets.highlight import highlighted_rows
from napari_affinity_vae.widgets.viewer_session import session_for
from test_clicks import click, messages, shown, type_into

WAIT_MS = 120_000


K = 9  # clusters of the embedded sample


@pytest.fixture(scope="module")
def embedded(sample_simulation) -> pd.DataFrame:
    """The sample's picks embedded by the bundled model, laid out by PCA and clustered by k-means,
    through the verbs the widgets call, with the widgets' defaults: computed once for the module."""
    tomogram = Tomogram(Path("sample.mrc"), sample_simulation.tomogram, 10.0, True)
    picks = pick(tomogram.data, PickSettings(*DIAMETERS, voxel_size=10.0))
    model, card = load_bundled()
    table = embed(tomogram, picks, model, card)
    columns = run_steps(analyse_steps(table[latent_columns(table)], "pca", clusters=K), 2, "", None)
    return pd.concat([table, columns], axis=1)


@pytest.fixture
def explorer(make_napari_viewer, sample_simulation):
    """A viewer with every dock widget and the sample tomogram (ground truth hidden)."""
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    for data, kwargs, kind in sample_layers(sample_simulation):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    return viewer, widgets, session_for(viewer)


@pytest.fixture
def explored(explorer, embedded):
    """The explorer showing the embedded sample, as after Pick and Run."""
    viewer, widgets, session = explorer
    widgets["Particles"].show_particles(embedded, "picks")
    return viewer, widgets, session


def test_pick_and_run_give_the_table_the_command_line_verbs_give(explorer, embedded, qtbot):
    _viewer, widgets, session = explorer
    widgets["Particles"].pick_button.native.click()
    qtbot.waitUntil(lambda: not widgets["Particles"].task.running, timeout=WAIT_MS)
    assert len(session.particles) == len(embedded) > 100
    embed_widget = widgets["Embed"]
    embed_widget.run_button.native.click()  # with the widget's defaults
    qtbot.waitUntil(
        lambda: session.clusters is not None and not embed_widget.task.running, timeout=WAIT_MS
    )
    picks = widgets["Particles"].particles_layer
    assert picks.name == "sample picks" and "cluster" in picks.features
    assert len(picks.data) == len(session.particles)
    table = session.particles
    np.testing.assert_allclose(table[["z", "y", "x"]], embedded[["z", "y", "x"]])
    latent = embedded[latent_columns(embedded)].to_numpy()
    np.testing.assert_allclose(session.latent, latent, atol=1e-5)
    expected = run_steps(analyse_steps(latent), 2, "", None)  # the verbs' defaults
    np.testing.assert_allclose(session.embedding, expected[list(EMBEDDING)], atol=1e-3)
    assert adjusted_rand_score(session.clusters, expected[CLUSTER]) > 0.99
    assert embed_widget.status.value == f"{len(table)} particles, {CLUSTERS} clusters"


def test_a_lasso_in_the_scatter_highlights_those_particles_in_the_viewer(explored):
    viewer, widgets, session = explored
    picks = widgets["Particles"].particles_layer
    scatter = widgets["Latent scatter"]
    label = int(np.bincount(session.clusters).argmax())
    members = np.flatnonzero(session.clusters == label)
    xy = session.embedding
    pad = 0.01 * (xy.max(axis=0) - xy.min(axis=0))
    low, high = xy[members].min(axis=0) - pad, xy[members].max(axis=0) + pad
    scatter.select_lasso(np.array([low, [high[0], low[1]], high, [low[0], high[1]]]))
    inside = np.flatnonzero(np.all((xy >= low) & (xy <= high), axis=1))
    assert set(members) <= set(session.selection)
    highlight = viewer.layers["sample picks (selected)"]
    np.testing.assert_array_equal(highlighted_rows(highlight), session.selection)
    drawn = np.unique(highlight.data, axis=0)  # only the selected points, in 2D and 3D alike
    np.testing.assert_allclose(drawn, np.unique(picks.data[session.selection], axis=0))
    assert len(session.selection) >= len(members) and picks.opacity < 1
    assert set(session.selection) <= set(inside) | set(members)

    # napari's own selection of points becomes the scatter's selection
    chosen = {0, 5, 7}
    picks.selected_data = chosen
    assert session.selection.tolist() == sorted(chosen)
    assert scatter.highlighted.tolist() == sorted(chosen)
    np.testing.assert_array_equal(highlighted_rows(highlight), sorted(chosen))


def test_a_decoded_cluster_centre_is_a_volume_beside_the_tomogram(explored, qtbot):
    viewer, widgets, session = explored
    picks = widgets["Particles"].particles_layer
    viewer.layers.selection.active = picks
    label = int(np.bincount(session.clusters).argmax())
    decode = widgets["Decode"]
    decode.source.value, decode.cluster.value = CENTRE, label
    viewer.dims.set_point(0, 300.0)  # the user looks at a plane off the middle
    decode.decode_button.native.click()
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)
    volume = viewer.layers["decoded"]
    # beside the tomogram, enlarged to three quarters of its height so it can be read
    enlarged = 0.75 * session.tomogram.shape[1] * 10.0 / 32
    assert volume.data.shape == (32, 32, 32)
    assert tuple(volume.scale) == pytest.approx((enlarged,) * 3)
    assert "enlarged" in decode.status.value
    assert volume.data.std() > 0
    assert viewer.layers.selection.active is picks  # decoding leaves the user's tools alone
    # an isosurface at mean + 2 SD, which the user can move; beside the tomogram, in the
    # plane the user looks at
    assert volume.rendering == "iso"
    assert volume.iso_threshold == pytest.approx(volume.data.mean() + 2 * volume.data.std())
    decode.iso_level.value = 3.0
    assert volume.iso_threshold == pytest.approx(volume.data.mean() + 3 * volume.data.std())
    assert volume.translate[0] <= 300.0 <= volume.translate[0] + 32 * enlarged
    # and in view, though beyond the tomogram's edge: the camera was fitted to show it
    middle = np.asarray(volume.translate[1:]) + 16 * enlarged
    half_view = np.asarray(viewer.canvas.size) / viewer.camera.zoom / 2
    assert (np.abs(middle - np.asarray(viewer.camera.center[-2:])) < half_view).all()
    before = volume.data.copy()
    decode.sliders[0].value = decode.sliders[0].max  # a latent traversal by hand
    qtbot.waitUntil(lambda: not np.array_equal(volume.data, before), timeout=WAIT_MS)


def test_an_explanation_lists_dimensions_whose_click_traverses_one(explored, qtbot):
    viewer, widgets, session = explored
    picks = widgets["Particles"].particles_layer
    scatter, decode = widgets["Latent scatter"], widgets["Decode"]
    label = int(np.bincount(session.clusters).argmax())
    scatter.select_category("cluster", str(label))
    decode.explain_button.native.click()
    qtbot.waitUntil(lambda: len(decode.explanation) > 0, timeout=WAIT_MS)
    first = decode.explanation[0]
    first.clicked.emit()
    dimension = int(first.text.split(":")[0].split()[-1])
    assert decode.sliders[dimension].label == f"latent {dimension}"  # as the button says
    name = f"traversal latent {dimension}"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=WAIT_MS)
    assert viewer.layers[name].data.shape == (9, 32, 32, 32)
    assert viewer.dims.axis_labels == ("traversal step", "z", "y", "x")  # the slider it adds
    picks.selected_data = {1, 2}  # another selection: the old explanation no longer holds
    assert len(decode.explanation) == 0


def test_an_explanation_shows_its_equation_and_its_accuracy_against_every_dimension(
    explored, qtbot
):
    _viewer, widgets, session = explored
    decode = widgets["Decode"]
    label = int(np.bincount(session.clusters).argmax())
    widgets["Latent scatter"].select_category("cluster", str(label))
    click(qtbot, decode.explain_button)
    qtbot.waitUntil(lambda: decode.equation.value != "", timeout=WAIT_MS)
    assert shown(decode.equation)
    equation, where, accuracy = decode.equation.value.split("\n")
    assert equation.startswith("P(selected) = \N{GREEK SMALL LETTER SIGMA}(")
    assert equation.endswith(")")
    # the equation's dimensions are those listed, in order; each button's side is its means',
    # or for a dimension only squared, its spread's, or only in a product, its sign's
    terms = list(dict.fromkeys(re.findall(r"z(\d+)", equation)))
    button = re.compile(r"latent (\d+): ([\w ]+) \((.+) vs (.+)\)")
    listed = [button.fullmatch(b.text).groups() for b in decode.explanation]
    assert terms == [dimension for dimension, *_ in listed] and terms
    for dimension, side, selected, others in listed:
        if re.search(rf" [\d.]+·z{dimension}(?![\d²·])", equation):  # alone, not squared
            assert side == ("higher" if float(selected) > float(others) else "lower")
        elif re.search(rf"z{dimension}²", equation):
            assert side in ("nearer the middle", "farther out")
        else:
            assert re.fullmatch(r"(same side as|opposite side to) latent \d+", side), side
    first = terms[0]
    assert where.startswith(f"z{first} = (latent {first} ")
    found = re.fullmatch(
        r"sparse model: (\d+)% of the full model's balanced accuracy "
        r"\((0\.\d\d|1\.00) vs (0\.\d\d|1\.00), 5-fold\)",
        accuracy,
    )
    assert found and int(found[1]) >= 90  # a cluster of the sample: a few dimensions suffice
    widgets["Latent scatter"].select_category("cluster", str(label - 1 if label else 1))
    assert decode.equation.value == ""  # another selection: the equation no longer holds


@pytest.mark.parametrize(
    ("chosen", "listed"),
    [
        (
            lambda z: z[:, 1] ** 2 + z[:, 4] ** 2 < 1.0,
            ["latent 1: nearer the middle", "latent 4: nearer the middle"],
        ),
        (
            lambda z: z[:, 1] * z[:, 4] > 0,
            ["latent 1: same side as latent 4", "latent 4: same side as latent 1"],
        ),
    ],
    ids=["a ball", "a product"],
)
def test_a_selection_its_means_do_not_set_apart_is_listed_by_what_does(
    explorer, embedded, qtbot, chosen, listed
):
    """A ball among its shell differs in spread, and the particles where latents 1 and 4 lie
    on the same side of their means by z1·z4, not in their means: "higher (0.01 vs -0.02)"
    said nothing of either."""
    _viewer, widgets, session = explorer
    table = embedded.copy()
    columns = latent_columns(table)
    table[columns] = np.random.default_rng(0).normal(size=(len(table), len(columns)))
    widgets["Particles"].show_particles(table, "picks")
    session.select(np.flatnonzero(chosen(table[columns].to_numpy())))
    decode = widgets["Decode"]
    click(qtbot, decode.explain_button)
    qtbot.waitUntil(lambda: decode.equation.value != "", timeout=WAIT_MS)
    assert sorted(b.text.split(" (")[0] for b in decode.explanation) == listed


def test_a_column_is_fitted_over_the_selection_or_all_particles(explored, qtbot, notifications):
    _viewer, widgets, session = explored
    decode = widgets["Decode"]
    choices = list(decode.fit_column.choices)
    assert {"score", "reconstruction_error"} <= set(choices)
    assert not {"z", "y", "x", "cluster", "embedding_x", "latent_0", "pose_0"} & set(choices)
    decode.fit_column.value = "reconstruction_error"
    label = int(np.bincount(session.clusters).argmax())
    widgets["Latent scatter"].select_category("cluster", str(label))
    click(qtbot, decode.fit_button)
    qtbot.waitUntil(lambda: decode.fit_result.value != "", timeout=WAIT_MS)
    equation, where, r2 = decode.fit_result.value.split("\n")
    assert equation.startswith("reconstruction_error ≈ ") and "·z" in equation
    assert where.startswith("z")
    selected = len(session.selection)
    expected = rf"cross-validated R² -?\d\.\d\d \(5-fold\) over the selection: {selected} particles"
    assert re.fullmatch(expected, r2), r2

    session.clear_selection()  # the fit was of the selection: it goes with it
    assert decode.fit_result.value == ""
    click(qtbot, decode.fit_button)
    qtbot.waitUntil(lambda: decode.fit_result.value != "", timeout=WAIT_MS)
    everyone = len(session.particles)
    assert decode.fit_result.value.endswith(f"over all particles: {everyone} particles")

    # a column another dock adds is offered at once; a constant one is refused in a sentence
    thickness = pd.DataFrame({"ice_thickness": np.full(everyone, 40.0)})
    session.add_columns(session.version, thickness)
    assert decode.fit_column.choices[-1] == "ice_thickness" and decode.fit_result.value == ""
    click(qtbot, decode.fit_button)
    qtbot.waitUntil(lambda: decode.fit_result.value != "", timeout=WAIT_MS)
    decode.fit_column.value = "ice_thickness"  # the fit shown was of another column
    assert decode.fit_result.value == ""
    click(qtbot, decode.fit_button)
    qtbot.waitUntil(lambda: len(notifications) > 0, timeout=WAIT_MS)
    assert messages(notifications) == [
        f"ice_thickness is 40 for all {everyone} particles: nothing to fit"
    ]
    assert decode.fit_result.value == ""


def test_go_to_selected_and_export_the_selection(explored, tmp_path):
    viewer, widgets, session = explored
    picks = widgets["Particles"].particles_layer
    label = int(np.bincount(session.clusters).argmax())
    widgets["Latent scatter"].select_category("cluster", str(label))
    widgets["Latent scatter"].go_button.native.click()
    here = np.asarray(viewer.dims.point[-3:])
    world = session.particles.loc[session.selection, ["z", "y", "x"]].to_numpy() * 10.0
    assert np.min(np.abs(world[:, 0] - here[0])) <= 10.0  # the plane of a selected particle

    # export the selection to STAR; reading it back gives the same coordinates
    chosen = {0, 5, 7}
    picks.selected_data = chosen
    out = tmp_path / "chosen.star"
    widgets["Export"].file.value = out
    widgets["Export"].export_button.native.click()
    assert out.is_file() and widgets["Export"].status.value == "wrote 1 file: chosen.star"
    back = read_particles(out, voxel_size=10.0, tomogram_shape=session.tomogram.shape)
    expected = session.particles.iloc[sorted(chosen)]
    np.testing.assert_allclose(back[["z", "y", "x"]], expected[["z", "y", "x"]], atol=1e-3)
    assert back["cluster"].tolist() == expected["cluster"].tolist()


def test_mouse_lasso_shift_adds_and_escape_clears(explored):
    viewer, widgets, session = explored
    scatter = widgets["Latent scatter"]
    scatter.canvas.native.resize(400, 400)
    scatter.view.camera.rect = (-1, -1, 2, 2)  # data -1..1 fills the canvas

    def drag(corners, modifiers=()):
        path = [scatter.view.scene.transform.map(c)[:2] for c in corners]
        events = scatter.canvas.events
        events.mouse_press(pos=path[0], button=1, modifiers=modifiers)
        for p in path[1:]:
            events.mouse_move(pos=p, button=1, modifiers=modifiers, press_event=None)
        events.mouse_release(pos=path[-1], button=1, modifiers=modifiers)

    xy = session.embedding
    scale = np.abs(xy).max()
    scatter.view.camera.rect = (-scale, -scale, 2 * scale, 2 * scale)
    left = [(-scale, -scale), (0, -scale), (0, scale), (-scale, scale)]
    drag(left)
    on_left = set(np.flatnonzero(xy[:, 0] < 0))
    assert len(session.selection) > 0 and set(session.selection) <= on_left
    assert len(on_left - set(session.selection)) <= 0.05 * len(on_left)
    right = [(0, -scale), (scale, -scale), (scale, scale), (0, scale)]
    drag(right, modifiers=(_key("Shift"),))
    assert len(session.selection) >= 0.95 * len(xy)
    scatter.canvas.events.key_press(key=_key("Escape"), text="")
    assert len(session.selection) == 0
    assert not viewer.layers["sample picks (selected)"].visible


def test_a_shaky_click_selects_and_a_drag_ends_where_the_mouse_is_released(explored):
    """In Lasso and Rectangle modes a click whose mouse moved a pixel cleared the selection, and a
    quick drag ended at the last move vispy passed on rather than where it was released."""
    _, widgets, session = explored
    scatter = widgets["Latent scatter"]
    scatter.canvas.native.resize(400, 400)
    xy = session.embedding
    scale = np.abs(xy).max()
    scatter.view.camera.rect = (-scale, -scale, 2 * scale, 2 * scale)
    events = scatter.canvas.events
    on_screen = lambda point: scatter.view.scene.transform.map(point)[:2]  # noqa: E731
    for mode in ("Lasso", "Rectangle"):
        scatter.mode.value = mode
        session.select([0, 1])
        at = on_screen(xy[7])
        events.mouse_press(pos=at, button=1)
        shaken = at + np.array([1.0, 0.0])
        events.mouse_move(pos=shaken, button=1, press_event=None)
        events.mouse_release(pos=shaken, button=1)
        assert session.selection.tolist() == [7], mode
    scatter.mode.value = "Rectangle"
    start, seen, released = (-scale, -scale), (-0.9 * scale, scale), (0, scale)
    events.mouse_press(pos=on_screen(start), button=1)
    events.mouse_move(pos=on_screen(seen), button=1, press_event=None)
    events.mouse_release(pos=on_screen(released), button=1)  # its last move was not seen
    left = np.flatnonzero(xy[:, 0] < 0)
    assert len(set(session.selection) ^ set(left)) <= 0.05 * len(left)


def _key(name: str):
    from vispy.util.keys import Key

    return Key(name)


def _random_particles(session, n: int, seed: int = 0) -> pd.DataFrame:
    shape = np.asarray(session.tomogram.shape)
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.uniform(20, shape - 20, (n, 3)), columns=["z", "y", "x"])


def test_cancel_leaves_the_session_consistent_and_a_second_run_works(
    explorer, qtbot, slow_embedding
):
    _, widgets, session = explorer
    widgets["Particles"].show_particles(_random_particles(session, 160), "many")
    embed = widgets["Embed"]
    embed.batch, embed.projection.value = 16, "PCA"  # 10 batches, at least 1 s
    embed.run_button.native.click()
    qtbot.waitUntil(lambda: len(slow_embedding) >= 2, timeout=WAIT_MS)
    embed.cancel()
    assert not embed.run_button.enabled and not embed.cancel_button.enabled  # stopping
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    assert embed.run_button.enabled
    assert session.latent is None and embed.status.value == "cancelled"
    assert len(slow_embedding) < 5  # the work stopped within a batch
    embed.run_button.native.click()
    qtbot.waitUntil(lambda: session.clusters is not None, timeout=WAIT_MS)
    assert session.latent.shape == (160, 8) and slow_embedding[-1] == 160


def test_napari_keeps_processing_events_while_embedding(explorer, qtbot, slow_embedding):
    from qtpy.QtCore import QTimer

    _viewer, widgets, session = explorer
    widgets["Particles"].show_particles(_random_particles(session, 400), "many")
    embed = widgets["Embed"]
    embed.batch, embed.projection.value = 32, "PCA"  # 13 batches, at least 1.3 s
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    start = time.perf_counter()
    embed.run_button.native.click()
    qtbot.waitUntil(lambda: session.latent is not None, timeout=WAIT_MS)
    elapsed = time.perf_counter() - start
    timer.stop()
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    assert len(ticks) >= 0.5 * elapsed / 0.02
    assert np.max(np.diff(ticks)) < 0.5  # never frozen for half a second


def test_a_result_for_particles_replaced_meanwhile_is_discarded(explorer, qtbot, slow_embedding):
    _viewer, widgets, session = explorer
    widgets["Particles"].show_particles(_random_particles(session, 160), "many")
    embed = widgets["Embed"]
    embed.batch = 16
    embed.run_button.native.click()
    qtbot.waitUntil(lambda: len(slow_embedding) >= 1, timeout=WAIT_MS)
    worker = embed.task.worker
    widgets["Particles"].show_particles(_random_particles(session, 150), "others")  # imported
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    assert not worker.is_running and slow_embedding[-1] == 160  # it ran to the end
    assert session.latent is None and len(session.particles) == 150
    assert embed.status.value == "discarded (stale)"


def test_a_result_for_particles_edited_by_hand_meanwhile_lands_on_them(
    explorer, qtbot, slow_embedding
):
    """As in a project, a point added while Run embeds no longer throws the embedding away."""
    _viewer, widgets, session = explorer
    layer = widgets["Particles"].show_particles(_random_particles(session, 160), "many")
    embed = widgets["Embed"]
    embed.batch = 16
    embed.run_button.native.click()
    qtbot.waitUntil(lambda: len(slow_embedding) >= 1, timeout=WAIT_MS)
    layer.add(np.array([[100.0, 200.0, 200.0]]))  # the user adds a particle meanwhile
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    assert len(session.latent) == 161 and np.isfinite(session.latent[:160]).all()
    assert np.isnan(session.latent[160]).all()
    assert embed.status.value.startswith("160 of 161 particles")


def test_user_errors_are_notifications(explorer, qtbot, tmp_path, notifications):
    _viewer, widgets, session = explorer
    widgets["Embed"].run_button.native.click()  # no particles yet
    widgets["Export"].file.value = tmp_path / "none.star"
    widgets["Export"].export_button.native.click()
    bad = tmp_path / "bad.star"
    bad.write_text("data_particles\nloop_\n_rlnCoordinateX #1\nnot-a-number\n")
    widgets["Particles"].file.value = bad
    widgets["Particles"].import_button.native.click()
    widgets["Particles"].show_particles(_random_particles(session, 5), "few")
    widgets["Export"].what.value = SELECTED
    widgets["Export"].file.value = tmp_path / "empty.star"
    widgets["Export"].export_button.native.click()
    widgets["Export"].what.value = EACH_CLUSTER
    widgets["Export"].file.value = tmp_path / "clusters.star"
    widgets["Export"].export_button.native.click()
    messages = [str(n.message) for n in notifications]
    assert any("no particles to embed" in m for m in messages)
    assert any("bad.star" in m for m in messages)
    assert any("selection is empty" in m for m in messages)
    assert any("not clustered" in m for m in messages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.star"]


def test_hand_picking_and_two_tomograms(explorer, qtbot, tomogram_file):
    viewer, widgets, session = explorer
    layer = widgets["Particles"].pick_by_hand()
    assert layer.mode == "add" and len(session.particles) == 0
    layer.add(np.array([[100.0, 200.0, 200.0]]))  # as a click on the plane adds it
    assert session.particles[["z", "y", "x"]].to_numpy().tolist() == [[100.0, 200.0, 200.0]]
    assert session.particles["tomo_name"].tolist() == ["sample"]

    second = widgets["Tomogram"].open_file(tomogram_file)
    assert session.tomogram.name == "tomo_01" and second.name == "tomo_01"
    widgets["Particles"].show_particles(pd.DataFrame({"z": [5.0], "y": [6.0], "x": [7.0]}))
    assert set(session.particles["tomo_name"]) == {"tomo_01"}
    widgets["Tomogram"].layer.value = viewer.layers["sample"]  # back to the first tomogram
    assert widgets["Particles"].particles_layer == layer
    assert session.particles["tomo_name"].tolist() == ["sample"]


def test_widgets_remember_their_settings(make_napari_viewer):
    first = make_napari_viewer()
    _, particles = first.window.add_plugin_dock_widget(PLUGIN, "Particles")
    particles.diameter_min.value, particles.diameter_max.value = 150.0, 250.0
    _, embed = first.window.add_plugin_dock_widget(PLUGIN, "Embed")
    embed.clustering.value, embed.k.value = "Gaussian mixture", 5
    second = make_napari_viewer()
    _, particles = second.window.add_plugin_dock_widget(PLUGIN, "Particles")
    _, embed = second.window.add_plugin_dock_widget(PLUGIN, "Embed")
    assert (particles.diameter_min.value, particles.diameter_max.value) == (150.0, 250.0)
    assert (embed.clustering.value, embed.k.value) == ("Gaussian mixture", 5)


def test_export_formats_and_one_file_per_cluster(explorer, qtbot, tmp_path):
    _, widgets, session = explorer
    table = _random_particles(session, 40)
    widgets["Particles"].show_particles(table, "few")
    labels = pd.DataFrame({"cluster": np.arange(40) % 3, "latent_0": np.linspace(0, 1, 40)})
    session.add_columns(session.version, labels)
    export = widgets["Export"]
    export.what.value = EACH_CLUSTER
    export.format.value = "RELION 5 STAR"
    export.file.value = tmp_path / "clusters.star"
    export.export_button.native.click()
    written = [tmp_path / f"clusters_cluster{k}.star" for k in range(3)]
    assert sorted(p.name for p in tmp_path.glob("clusters_*")) == [p.name for p in written]
    shape = session.tomogram.shape
    for k, path in enumerate(written):
        back = read_particles(path, voxel_size=10.0, tomogram_shape=shape)
        expected = table[np.arange(40) % 3 == k]
        np.testing.assert_allclose(back[["z", "y", "x"]], expected[["z", "y", "x"]], atol=1e-3)
        assert "latent_0" not in back and set(back["cluster"]) == {k}
    export.what.value, export.latents.value = "All particles", True
    for label, suffix in (("CSV", ".csv"), ("Dynamo table", ".tbl"), ("RELION 4 STAR", ".star")):
        export.format.value = label
        export.file.value = tmp_path / "all"
        export.export_button.native.click()
        path = tmp_path / f"all{suffix}"
        assert path.is_file() and export.status.value == f"wrote 1 file: all{suffix}"
        back = read_particles(path, voxel_size=10.0, tomogram_shape=shape)
        np.testing.assert_allclose(back[["z", "y", "x"]], table[["z", "y", "x"]], atol=1e-3)
        if suffix != ".tbl":
            np.testing.assert_allclose(back["latent_0"], labels["latent_0"], atol=1e-5)


def test_density_view_for_many_points(make_napari_viewer):
    viewer = make_napari_viewer()
    _, scatter = viewer.window.add_plugin_dock_widget(PLUGIN, "Latent scatter")
    session = session_for(viewer)
    rng = np.random.default_rng(0)
    n = 250_000
    session.set_particles(pd.DataFrame(rng.uniform(0, 100, (n, 3)), columns=["z", "y", "x"]))
    xy = rng.normal(size=(n, 2))
    session.add_columns(
        session.version, pd.DataFrame({"embedding_x": xy[:, 0], "embedding_y": xy[:, 1]})
    )
    assert scatter.density.value and scatter.heat.visible and not scatter.points.visible
    scatter.select_rectangle(np.array([0.0, 0.0]), np.array([5.0, 5.0]))
    assert len(session.selection) == np.sum((xy[:, 0] >= 0) & (xy[:, 1] >= 0))
    assert scatter.selected.visible  # the selection is drawn over the density
    scatter.density.value = False
    assert scatter.points.visible and not scatter.heat.visible


def test_the_demo_explores_a_freshly_simulated_sample(make_napari_viewer):
    from napari_affinity_vae.demo import explore, open_sample

    viewer = make_napari_viewer(show=True)  # the scatter canvas draws only when shown
    widgets, docks = add_dock_widgets(viewer)
    open_sample(viewer, seed=3, particles=120)
    session = session_for(viewer)
    assert (
        viewer.layers[0].name == "sample" and len(viewer.layers["sample ground truth"].data) == 120
    )
    explore(viewer, widgets)
    assert [d.windowTitle() for d in docks.values()] == list(DOCK_WIDGETS)  # tabs read whole
    assert session.clusters is not None and len(session.selection) > 0
    chosen = session.clusters[session.selection[0]]
    assert set(session.selection) == set(np.flatnonzero(session.clusters == chosen))
    truth = viewer.layers["sample ground truth"].data  # the cluster shown is of molecules:
    picks = session.particles.loc[session.selection, ["z", "y", "x"]].to_numpy()
    near = np.linalg.norm(picks[:, None] - truth[None], axis=-1).min(axis=1) < 4
    assert near.mean() >= 0.7  # not the picker's false alarms on noise, often the largest
    assert "decoded" in viewer.layers
    shape = np.asarray(session.tomogram.shape) * session.tomogram.voxel_size
    assert _in_view(viewer, shape[1:])  # the whole plane, its picks and the selected cluster
    assert _window_fits_the_screen(viewer)
    picture = widgets["Latent scatter"].canvas.render()[..., :3].astype(int)
    saturated = (picture.max(axis=-1) - picture.min(axis=-1)) > 80
    drawn = np.abs(picture - picture[0, 0]).sum(axis=-1) > 60
    assert drawn.sum() > 200 and saturated.sum() > 20  # points drawn, the selection in colour


def _in_view(viewer, extent) -> bool:
    """Whether the (y, x) extent in Angstrom from the origin lies inside the 2D view."""
    from napari_affinity_vae.widgets.viewer_session import camera_of

    camera = camera_of(viewer)
    half = np.asarray(viewer.canvas.size, dtype=float) / 2 / camera.zoom
    centre = np.asarray(camera.center)[-2:]
    return bool(np.all(centre - half <= 0) and np.all(centre + half >= np.asarray(extent)))


def _window_fits_the_screen(viewer) -> bool:
    window = viewer.window._qt_window
    frame, screen = window.frameGeometry(), window.screen().availableGeometry()
    return frame.width() <= screen.width() and frame.height() <= screen.height()


@pytest.mark.parametrize("blobs", [1, 0])
def test_the_demo_on_a_tiny_uint8_tomogram_with_one_or_no_particle(
    make_napari_viewer, tmp_path, blobs, notifications
):
    from conftest import write_mrc
    from napari_affinity_vae.demo import explore

    rng = np.random.default_rng(0)
    data = rng.normal(128, 5, (36, 206, 94))
    zz, yy, xx = np.mgrid[:36, :206, :94]
    if blobs:
        data -= 60 * np.exp(-((zz - 18) ** 2 + (yy - 100) ** 2 + (xx - 47) ** 2) / 32)
    path = write_mrc(tmp_path / "crop.mrc", np.clip(data, 0, 255).astype(np.uint8), 10.52)
    viewer = make_napari_viewer(show=True)
    widgets, _ = add_dock_widgets(viewer)
    widgets["Tomogram"].open_file(path)
    explore(viewer, widgets)
    session = session_for(viewer)
    shown = [str(n.message) for n in notifications]
    assert len(session.particles) == blobs
    if blobs:
        assert "decoded" in viewer.layers and session.clusters.tolist() == [0]
        assert any("1 particle" in m for m in shown)
        decode = widgets["Decode"]
        assert all(s.min <= s.value <= s.max for s in decode.sliders)
    else:
        assert any("found no particles" in m for m in shown)
    assert _in_view(viewer, (206 * 10.52, 94 * 10.52))
    assert _window_fits_the_screen(viewer)


def test_on_a_short_window_the_steps_keep_room_above_the_latent_scatter(make_napari_viewer):
    """A 1280 x 720 screen: the step tabs were left 89 pixels, one field, under a scatter
    sized for a 1000-pixel window."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 660)
    _, docks = add_dock_widgets(viewer)
    steps, scatter = docks["Particles"], docks["Latent scatter"]  # the tab shown first
    assert steps.height() >= 0.25 * window.height()  # a few fields, the rest scrolls
    assert scatter.widget().plot.canvas.native.height() >= 150


def _settled(qtbot, task) -> None:
    qtbot.waitUntil(lambda: not task.running, timeout=WAIT_MS)


def _slowed_decoding(monkeypatch, seconds: float) -> None:
    """Every decode of the Decode dock takes ``seconds`` longer: the user acts meanwhile."""
    from napari_affinity_vae.widgets import decode as decode_module

    real = decode_module.decode_volumes

    def slow(*args):
        time.sleep(seconds)
        return real(*args)

    monkeypatch.setattr(decode_module, "decode_volumes", slow)


def test_a_traversal_asked_while_the_sliders_decode_shows_their_volume_after(
    explored, qtbot, monkeypatch
):
    """A slider dragged, then at once a dimension clicked to traverse: the slider's decode was
    cancelled, and the volume shown no longer matched the sliders."""
    viewer, widgets, session = explored
    decode = widgets["Decode"]
    widgets["Latent scatter"].select_category(CLUSTER, "2")
    click(qtbot, decode.explain_button)
    _settled(qtbot, decode.explaining)
    _slowed_decoding(monkeypatch, 0.5)
    decode.sliders[0].value = decode.sliders[0].max
    click(qtbot, decode.explanation[0])  # while the slider's volume decodes
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)
    _settled(qtbot, decode.decoding)
    assert any(x.name.startswith("traversal latent") for x in viewer.layers)
    latent, pose = decode._slider_values()
    model, card = session.model, session.card
    from napari_affinity_vae.model.inference import decode as decode_latents

    expected = -decode_latents(model, latent[None], pose[None])[0]
    np.testing.assert_allclose(viewer.layers["decoded"].data, expected, atol=1e-4)
    assert card is session.card


def test_clustering_again_keeps_the_sliders_and_a_decode_under_way(explored, qtbot, monkeypatch):
    """The same latents projected and clustered again: the sliders jumped to the medians (a
    nudge then decoded another latent), and a decode running meanwhile was dropped unsaid."""
    _, widgets, session = explored
    decode, embed_dock = widgets["Decode"], widgets["Embed"]
    session.select([10])
    decode.source.value = "Selected particle"
    click(qtbot, decode.decode_button)
    _settled(qtbot, decode.decoding)
    before = [s.value for s in decode.sliders]
    embed_dock.k.value = 4
    click(qtbot, embed_dock.apply_button)
    _settled(qtbot, embed_dock.task)
    assert [s.value for s in decode.sliders] == before
    _slowed_decoding(monkeypatch, 1.0)
    session.select([20])
    click(qtbot, decode.decode_button)
    click(qtbot, embed_dock.apply_button)  # while particle 20 decodes
    _settled(qtbot, embed_dock.task)
    _settled(qtbot, decode.decoding)
    np.testing.assert_allclose([s.value for s in decode.sliders][:8], session.latent[20], atol=1e-4)
    assert decode.status.value.startswith("decoded: ")


def test_more_than_ten_clusters_each_have_their_own_colour(explored, qtbot):
    """The palette of ten repeated: clusters 0 and 10 shared a colour in the scatter, its
    legend and the viewer."""
    _, widgets, session = explored
    embed_dock = widgets["Embed"]
    embed_dock.k.value = 12
    click(qtbot, embed_dock.apply_button)
    _settled(qtbot, embed_dock.task)
    assert len(np.unique(session.clusters)) == 12
    legend = widgets["Latent scatter"].legend.text()
    colours = set(re.findall(r"#[0-9a-fA-F]{6}", legend))
    assert len(colours) == 12, legend
    picks = widgets["Particles"].particles_layer
    outlines = {tuple(np.round(c, 3)) for c in picks.border_color}
    assert len(outlines) == 12


def test_the_viewer_colours_particles_as_the_scatter_does(explored, qtbot):
    """Labelling a selection coloured the scatter by label, while the viewer kept the clusters'
    colours: one particle had two colours."""
    _, widgets, session = explored
    scatter, picks = widgets["Latent scatter"], widgets["Particles"].particles_layer
    session.select([0, 1, 2])
    type_into(qtbot, scatter.label_name, "ring")
    click(qtbot, scatter.label_button)
    assert scatter.colour_by.value == "label"
    np.testing.assert_allclose(picks.border_color, scatter._colours, atol=1e-3)
    scatter.colour_by.value = "cluster"
    np.testing.assert_allclose(picks.border_color, scatter._colours, atol=1e-3)
    assert len({tuple(c) for c in np.round(picks.border_color, 3)}) == K


def test_a_dimension_without_spread_is_traversed_across_its_slider(explored, qtbot):
    """One particle's latent has no spread: nine identical volumes were decoded, unsaid. One
    particle gets no explanation, so no traversal button: the call is the one it makes."""
    viewer, widgets, session = explored
    decode = widgets["Decode"]
    session.set_particles(session.particles.iloc[:1].reset_index(drop=True))
    decode.traverse(3)
    _settled(qtbot, decode.decoding)
    steps = viewer.layers["traversal latent 3"].data
    assert np.abs(steps[0] - steps[-1]).max() > 1e-3


def test_an_explanation_replaces_the_word_that_nothing_separated_the_last_selection(
    explored, qtbot
):
    _, widgets, session = explored
    decode = widgets["Decode"]
    session.select(np.random.default_rng(0).choice(len(session.particles), 40, replace=False))
    click(qtbot, decode.explain_button)
    _settled(qtbot, decode.explaining)
    assert decode.status.value.startswith("no latent dimension separates")
    widgets["Latent scatter"].select_category(CLUSTER, "2")
    assert decode.status.value == ""
    click(qtbot, decode.explain_button)
    _settled(qtbot, decode.explaining)
    assert len(decode.explanation) and decode.status.value == ""


def test_particles_without_a_value_are_not_coloured_as_the_lowest():
    from napari_affinity_vae.colours import NOISE_COLOUR, colours_for

    colours, legend = colours_for(pd.Series([0.1, 0.5, np.nan, 0.9]), "no score")
    assert not np.allclose(colours[2], colours[0])
    assert legend[-1] == ("no score", NOISE_COLOUR) and len(legend) == 3


def test_deleting_the_explored_picks_never_explores_the_hidden_ground_truth(
    explorer, tmp_path, qtbot
):
    """With the picks layer deleted, the sample's hidden ground truth (its answer key, class
    names and all) became the particles, and Export wrote it."""
    viewer, widgets, session = explorer
    picks = widgets["Particles"].show_particles(_random_particles(session, 5), "picks")
    viewer.layers.remove(picks)
    assert widgets["Particles"].particles_layer is None and len(session.particles) == 0
    export = widgets["Export"]
    export.what.value = ALL
    export.file.value = str(tmp_path / "after_delete.csv")
    export.export_button.native.click()
    assert not (tmp_path / "after_delete.csv").exists()
