"""Regenerate the pictures in docs/images from the running plugin, following the demo (run under
Xvfb on a machine without a screen).

Usage: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/make_screenshots.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QScrollArea

from napari_affinity_vae.demo import (
    DEMO_SLAB,
    WINDOW,
    add_dock_widgets,
    documented_settings,
    explore,
    open_sample,
    settle,
    wait_for,
)
from napari_affinity_vae.widgets.viewer_session import camera_of, session_for

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    with documented_settings():  # not those remembered from other work
        pictures()


def pictures() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-affinity-vae")
    viewer.window._qt_window.resize(*WINDOW)
    widgets, docks = add_dock_widgets(viewer)
    open_sample(viewer)
    widgets["Tomogram"].slab.value = DEMO_SLAB
    docks["Tomogram"].raise_()
    shot(viewer, "tomogram_widget.png")

    embed_mid_run(viewer, widgets, docks)
    explore(viewer, widgets)  # picks again, embeds, selects a confident cluster, decodes it
    explain_and_fit(widgets)
    docks["Decode"].raise_()
    shot(viewer, "explorer.png")
    for name in ("Particles", "Embed", "Decode"):
        docks[name].raise_()
        settle(0.3)
        grab(docks[name], f"{name.lower()}_widget.png")
    widgets["Decode"]._form.native.grab().save(str(IMAGES / "decode_explained.png"))  # unscrolled
    grab(docks["Latent scatter"], "scatter_widget.png")

    decoded_in_3d(viewer, widgets, docks)
    ground_truth_in_3d(viewer, widgets)
    train_in_napari(viewer, widgets, docks)
    with tempfile.TemporaryDirectory() as folder:  # the Export widget after a click, last
        export = widgets["Export"]  # (its notification would show in the shots above)
        export.file.value = Path(folder) / "cluster.star"
        export.export_button.native.click()
    docks["Export"].raise_()
    settle(0.3)
    grab(docks["Export"], "export_widget.png")
    viewer.close()
    with tempfile.TemporaryDirectory() as folder:
        explore_project(Path(folder))
    with tempfile.TemporaryDirectory() as folder:
        explore_copick(Path(folder))
    explore_splats()
    for path in sorted(IMAGES.glob("*.png")):
        print(path)


def embed_mid_run(viewer: napari.Viewer, widgets: dict, docks: dict) -> None:
    """The Embed widget with its progress bar, half-way through the sample's particles."""
    session = session_for(viewer)
    widgets["Particles"].run_picker()
    wait_for(lambda: not widgets["Particles"].task.running)
    embed = widgets["Embed"]
    embed.batch = 8  # many small steps, so the run is caught in the middle
    docks["Embed"].raise_()
    viewer.window._qt_window._activity_dialog.show()
    embed.run()
    wait_for(lambda: embed.task.worker is not None)
    done: list[int] = []
    embed.task.worker.yielded.connect(done.append)
    wait_for(lambda: bool(done) and done[-1] > len(session.particles) // 3)
    shot(viewer, "embed_running.png")
    embed.cancel()
    viewer.window._qt_window._activity_dialog.hide()
    embed.batch = 512


def explain_and_fit(widgets: dict) -> None:
    """The Decode widget with the selection's explanation and the reconstruction error fitted
    over the selection."""
    decode = widgets["Decode"]
    wait_for(lambda: not decode.explaining.running)
    decode.fit_column.value = "reconstruction_error"
    decode.fit()
    wait_for(lambda: not decode.fitting.running)


def decoded_in_3d(
    viewer: napari.Viewer,
    widgets: dict,
    docks: dict,
    name: str = "decoded_volume.png",
    shown: tuple[str, ...] = ("decoded",),
) -> None:
    """The decoded cluster centre as a volume (and the ``shown`` layers), beside the tomogram,
    seen in 3D."""
    decode = widgets["Decode"]
    decoded = viewer.layers["decoded"]
    for layer in viewer.layers:
        layer.visible = layer.name in shown
    widgets["Tomogram"].rendering.value = "Volume"
    camera_of(viewer).angles = (15, 35, 60)
    extent = decoded.extent.world
    camera_of(viewer).center = tuple((extent[0] + extent[1]) / 2)
    span = float(np.max(extent[1] - extent[0]))
    camera_of(viewer).zoom = min(viewer.canvas.size) / (1.6 * span)  # the box fills the view
    docks["Decode"].raise_()
    decode.status.value = decode.status.value  # keep the widget as the decode left it
    shot(viewer, name)
    for layer in viewer.layers:
        layer.visible = "ground truth" not in layer.name and "selected" not in layer.name


def ground_truth_in_3d(viewer: napari.Viewer, widgets: dict) -> None:
    """The sample's hidden ground truth: a tomogram plane and molecules coloured by class."""
    for layer in viewer.layers:
        layer.visible = layer.name in ("sample", "sample ground truth")
    image = viewer.layers["sample"]
    image.depiction = "plane"
    image.plane.position = (100, 200, 200)
    image.plane.normal = (1, 0, 0)
    viewer.reset_view()
    camera_of(viewer).angles = (0, 30, 65)
    shot(viewer, "sample_ground_truth.png")


def train_in_napari(viewer: napari.Viewer, widgets: dict, docks: dict) -> None:
    """Every cluster labelled as a class, and the bundled model fine-tuned on them for a few
    epochs: the Train dock's loss plot and preview."""
    widgets["Latent scatter"].clusters_button.native.click()
    train = widgets["Train"]
    train.epochs.value = 12
    docks["Train"].raise_()
    train.train_button.native.click()
    wait_for(lambda: train.trained is not None and not train.task.running)
    settle(0.5)
    train._form.native.grab().save(str(IMAGES / "train_widget.png"))  # all of it, not scrolled


def explore_project(folder: Path) -> None:
    """A simulated RELION 5 project of four tomograms opened in the Project dock, embedded,
    coloured by tomogram, one cluster selected across the tomograms and gone to."""
    from napari_affinity_vae.simulate.project import write_project
    from napari_affinity_vae.simulate.tomogram import Simulation

    write_project(folder, Simulation(shape=(80, 256, 256), particles=40, snr=0.1, seed=3), 4)
    viewer = napari.Viewer(title="napari-affinity-vae")
    viewer.window._qt_window.resize(*WINDOW)
    widgets, docks = add_dock_widgets(viewer)
    session = session_for(viewer)
    widgets["Project"].files.value = (folder / "optimisation_set.star",)
    widgets["Project"].open_button.native.click()
    widgets["Tomogram"].slab.value = DEMO_SLAB
    widgets["Embed"].run_button.native.click()
    wait_for(lambda: session.clusters is not None and not widgets["Embed"].task.running)
    scatter = widgets["Latent scatter"]
    scatter.colour_by.value = "tomo_name"
    label = int(np.bincount(session.clusters).argmax())
    scatter.select_category("cluster", str(label))
    scatter.go_to_selected()
    docks["Project"].raise_()
    settle(1.0)
    shot(viewer, "project.png")
    grab(docks["Project"], "project_widget.png")
    viewer.close()


def explore_copick(folder: Path) -> None:
    """A simulated copick project (OME-Zarr tomograms) opened in the Project dock, one pick set
    chosen, two particles selected and the Export dock set to write them back as copick picks."""
    from napari_affinity_vae.simulate.copick_project import write_copick_project
    from napari_affinity_vae.simulate.tomogram import Simulation

    settings = Simulation(shape=(80, 256, 256), particles=40, snr=0.1, seed=5)
    config = write_copick_project(folder, settings, 2)["config"]
    viewer = napari.Viewer(title="napari-affinity-vae")
    viewer.window._qt_window.resize(*WINDOW)
    widgets, docks = add_dock_widgets(viewer)
    project = widgets["Project"]
    project.files.value = (config,)
    project.open_button.native.click()
    project.picks.value = "ribosome by simulation, session 0"
    widgets["Tomogram"].slab.value = DEMO_SLAB
    widgets["Particles"].particles_layer.selected_data = {0, 1}
    export = widgets["Export"]
    export.format.value = "copick picks"
    export.new_object.value = "large-unknown"
    docks["Project"].raise_()
    settle(1.0)
    shot(viewer, "copick_project.png")
    docks["Export"].raise_()
    settle(0.3)
    grab(docks["Export"], "copick_export_widget.png")
    viewer.close()


def explore_splats() -> None:
    """The bundled splat model exploring the sample: the demo's cluster's centre rendered at
    twice the model's box, its Gaussians as points on it, seen in 3D, with the Decode dock's
    rotation sliders."""
    viewer = napari.Viewer(title="napari-affinity-vae")
    viewer.window._qt_window.resize(*WINDOW)
    widgets, docks = add_dock_widgets(viewer)
    open_sample(viewer)
    widgets["Tomogram"].slab.value = DEMO_SLAB
    embed, decode = widgets["Embed"], widgets["Decode"]
    embed.source.value = "Bundled splat model"
    decode.render_box.value = 2 * decode.render_box.value
    explore(viewer, widgets)
    wait_for(lambda: not decode.decoding.running)
    docks["Decode"].raise_()
    settle(0.3)
    decode.native.findChild(QScrollArea).ensureWidgetVisible(decode.sliders[-1].native)
    decoded_in_3d(viewer, widgets, docks, "decoded_splats.png", ("decoded", "decoded splats"))
    viewer.close()


def shot(viewer: napari.Viewer, name: str) -> None:
    settle(0.5)
    viewer.screenshot(str(IMAGES / name), canvas_only=False)


def grab(dock: object, name: str) -> None:
    dock.widget().grab().save(str(IMAGES / name))


if __name__ == "__main__":
    main()
