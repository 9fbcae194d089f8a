"""The demo: napari with every dock widget arranged, the sample tomogram (or the user's) picked and
embedded in the background, a cluster of confident picks selected and its centre decoded; then a
person takes over, or a screenshot is written and napari closes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_affinity_vae.io.tomogram import open_tomogram
from napari_affinity_vae.operations.defaults import CLUSTERS
from napari_affinity_vae.schema import AXES, CLUSTER, SCORE
from napari_affinity_vae.widgets.settings import ENVIRONMENT

if TYPE_CHECKING:
    import pandas as pd

PLUGIN = "napari-affinity-vae"
DOCK_WIDGETS = (
    "Tomogram",
    "Project",
    "Particles",
    "Embed",
    "Decode",
    "Train",
    "Export",
    "Latent scatter",
)
SAMPLE_KEY = "simulated_tomogram"
DEMO_SLAB = 50.0  # Angstrom averaged in the plane view, so particles stand out from the noise
WINDOW = (1600, 1000)

DOCK_WIDTH = 520
STEPS_SHARE = 0.55  # of the window's height: the step tabs above, the latent scatter below


def run_demo(
    tomogram: Path | None = None,
    *,
    voxel_size: float | None = None,
    screenshot: Path | None = None,
    seed: int | None = None,
    particles: int | None = None,
) -> int:
    """Start napari, explore the sample (simulated with ``seed`` and ``particles`` if given) or
    ``tomogram``; return after a screenshot, or when the window is closed. The sample is shown
    with the documented settings, and what changes in the docks is not remembered."""
    if tomogram is not None:  # fail early, clearly; a screenshot cannot wait for a voxel size
        open_tomogram(tomogram, voxel_size, require_voxel_size=screenshot is not None)
        return _run(tomogram, voxel_size, screenshot)
    with documented_settings():
        return _run(None, None, screenshot, seed, particles)


def _run(
    tomogram: Path | None,
    voxel_size: float | None,
    screenshot: Path | None,
    seed: int | None = None,
    particles: int | None = None,
) -> int:
    import napari

    viewer = napari.Viewer(title="napari-affinity-vae")
    viewer.window._qt_window.resize(*WINDOW)
    widgets, docks = add_dock_widgets(viewer)
    if tomogram is None:
        open_sample(viewer, seed, particles)
    else:
        widgets["Tomogram"].open_file(tomogram, voxel_size)
    widgets["Tomogram"].slab.value = DEMO_SLAB
    explore(viewer, widgets)
    docks["Decode"].raise_()  # its sliders and explanation show what the cluster is
    _scroll_to(widgets["Decode"], widgets["Decode"].equation)
    if screenshot is not None:
        settle()
        viewer.screenshot(str(screenshot), canvas_only=False)
        viewer.close()
        return 0
    napari.run()
    return 0


@contextlib.contextmanager
def documented_settings():
    """Within, dock widgets start from their defaults (the documented settings) rather than
    those remembered, and what changes in them is not remembered: the sample demo looked
    unlike its pictures after other work (PCA, say), and changed the remembered number of
    clusters."""
    with tempfile.TemporaryDirectory(prefix="avae-demo-") as folder:
        before = os.environ.get(ENVIRONMENT)
        os.environ[ENVIRONMENT] = str(Path(folder) / "widgets.json")
        try:
            yield
        finally:
            os.environ.pop(ENVIRONMENT, None)
            if before is not None:
                os.environ[ENVIRONMENT] = before


def add_dock_widgets(viewer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every dock widget on the right, the steps as tabs, the latent scatter below them; return
    the widgets and their docks by name."""
    from qtpy.QtCore import Qt

    widgets, docks = {}, {}
    for i, name in enumerate(DOCK_WIDGETS):
        tabify = 0 < i < len(DOCK_WIDGETS) - 1
        docks[name], widgets[name] = viewer.window.add_plugin_dock_widget(
            PLUGIN, name, tabify=tabify
        )
        docks[name].setWindowTitle(name)  # the tabs' text: "Embed", not "Embed (napari-aff..."
    settle(0.2)  # the docks need their first layout before they can be resized
    window = viewer.window._qt_window
    steps, scatter = docks["Embed"], docks["Latent scatter"]
    window.resizeDocks(list(docks.values()), [DOCK_WIDTH] * len(docks), Qt.Orientation.Horizontal)
    height = window.height()  # the window's own: a short screen makes it less than WINDOW's
    shares = [round(height * STEPS_SHARE), round(height * (1 - STEPS_SHARE))]
    window.resizeDocks([steps, scatter], shares, Qt.Orientation.Vertical)
    docks["Particles"].raise_()
    return widgets, docks


def open_sample(viewer: Any, seed: int | None = None, particles: int | None = None) -> None:
    """The sample tomogram with its hidden ground truth; another seed or count simulates anew."""
    from napari.layers import Layer

    from napari_affinity_vae._sample_data import SAMPLE, sample_layers
    from napari_affinity_vae.simulate.tomogram import simulate_tomogram

    if seed is None and particles is None:
        viewer.open_sample(PLUGIN, SAMPLE_KEY)
    else:
        changes = {"seed": seed, "particles": particles}
        settings = dataclasses.replace(
            SAMPLE, **{k: v for k, v in changes.items() if v is not None}
        )
        for data, kwargs, kind in sample_layers(simulate_tomogram(settings)):
            viewer.add_layer(Layer.create(data, kwargs, kind))
    viewer.layers.selection.active = viewer.layers[0]  # the tomogram's controls, not the truth


def explore(viewer: Any, widgets: dict[str, Any]) -> None:
    """Pick, embed, select a cluster (:func:`showcase_cluster`) in the scatter and decode its
    centre, keeping napari responsive while the workers run; then show the whole plane."""
    _pick_embed_decode(viewer, widgets)
    viewer.reset_view()  # the whole plane with its picks, and the decoded volume beside it


def showcase_cluster(clusters: np.ndarray, scores: pd.Series | None) -> int | None:
    """The cluster the demo decodes: the largest of those whose median picker score is at least
    the median pick's (the largest of all is often the picker's false alarms on noise), or the
    largest of all without scores; None when every particle is unclustered."""
    clusters = np.asarray(clusters)
    labels = np.unique(clusters[clusters >= 0])
    if not len(labels):
        return None
    sizes = np.array([np.sum(clusters == c) for c in labels])
    if scores is not None and scores.notna().any():
        values = scores.to_numpy(dtype=float)
        typical = np.nanmedian(values)
        confident = np.array([np.nanmedian(values[clusters == c]) >= typical for c in labels])
        sizes = np.where(confident, sizes, -1)
    return int(labels[sizes.argmax()])


def _pick_embed_decode(viewer: Any, widgets: dict[str, Any]) -> None:
    from napari.utils.notifications import show_info

    from napari_affinity_vae.text import count
    from napari_affinity_vae.widgets.decode import BESIDE, CENTRE
    from napari_affinity_vae.widgets.viewer_session import session_for

    session = session_for(viewer)
    widgets["Particles"].run_picker()
    wait_for(lambda: not widgets["Particles"].task.running)
    if not len(session.particles):
        show_info("The picker found no particles: try other diameters or a lower threshold")
        return
    widgets["Embed"].k.value = CLUSTERS  # the sample's nine classes and its gold beads
    widgets["Embed"].run()
    wait_for(lambda: session.clusters is not None and not widgets["Embed"].task.running)
    if session.clusters is None:
        return
    shown = showcase_cluster(session.clusters, session.particles.get(SCORE))
    if shown is None:
        show_info("Every particle was left unclustered: nothing to decode")
        return
    widgets["Latent scatter"].select_category(CLUSTER, str(shown))
    decode = widgets["Decode"]
    decode.source.value, decode.cluster.value = CENTRE, shown
    decode.placement.value = BESIDE
    decode.decode_source()
    # the plane of the cluster's centre particle: it shows there, with the volume beside it
    anchor = session.particles.loc[decode.anchor, list(AXES)].to_numpy(dtype=float)
    viewer.dims.set_point(0, anchor[0] * (session.tomogram.voxel_size or 1.0))
    wait_for(lambda: "decoded" in viewer.layers, timeout=60)
    if len(session.particles) > 1:
        decode.explain()
        wait_for(lambda: not decode.explaining.running, timeout=60)  # shown, as it would be
    else:
        show_info(f"The picker found {count(1, 'particle')}: nothing to compare it with")


def _scroll_to(dock: Any, widget: Any) -> None:
    """Scroll ``dock`` (a dock widget that scrolls) down to ``widget``."""
    from qtpy.QtWidgets import QScrollArea

    area = dock.native.findChild(QScrollArea)
    if area is not None:
        settle()
        area.ensureWidgetVisible(widget.native)


def wait_for(condition: Callable[[], bool], timeout: float = 600.0) -> bool:
    """Process Qt events until ``condition`` holds (True) or ``timeout`` seconds pass (False)."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        QApplication.processEvents()
        time.sleep(0.01)
    return True


def settle(seconds: float = 0.5) -> None:
    """Let napari draw what the last steps changed."""
    wait_for(lambda: False, timeout=seconds)
