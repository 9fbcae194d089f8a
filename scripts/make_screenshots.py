"""Regenerate the pictures in docs/images from the running plugin (run under Xvfb).

Usage: xvfb-run -a .venv/bin/python scripts/make_screenshots.py
"""

from __future__ import annotations

from pathlib import Path

import napari

from napari_affinity_vae.demo import DEMO_SLAB, PLUGIN, SAMPLE_KEY

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
WINDOW = (1400, 900)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-affinity-vae")
    viewer.window._qt_window.resize(*WINDOW)
    _, tomogram = viewer.window.add_plugin_dock_widget(PLUGIN, "Tomogram")
    viewer.open_sample(PLUGIN, SAMPLE_KEY)
    tomogram.slab.value = DEMO_SLAB
    viewer.layers.selection.active = viewer.layers["sample"]
    viewer.screenshot(str(IMAGES / "tomogram_widget.png"), canvas_only=False)

    truth = viewer.layers["sample ground truth"]
    truth.visible = True
    tomogram.rendering.value = "Volume"
    image = viewer.layers["sample"]
    image.depiction = "plane"
    image.plane.position = (100, 200, 200)
    image.plane.normal = (1, 0, 0)
    viewer.camera.angles = (0, 30, 65)
    viewer.screenshot(str(IMAGES / "sample_ground_truth.png"), canvas_only=False)
    viewer.close()
    for path in sorted(IMAGES.glob("*.png")):
        print(path)


if __name__ == "__main__":
    main()
