"""How soon a click on Cancel stops the picker in the Particles dock widget: a 128 x 640 x 640
tomogram (10 A/voxel) picked with the widget's default diameters and with 50-300 A (no binning,
four chunks), Cancel clicked 1 s in; prints the seconds from the click until Pick is enabled
again (the target is under 2 s). Needs a display (xvfb-run)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

SHAPE = (128, 640, 640)


def main() -> None:
    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from napari_affinity_vae.demo import PLUGIN, wait_for

    with tempfile.TemporaryDirectory() as folder:
        os.environ["NAPARI_AFFINITY_VAE_SETTINGS"] = str(Path(folder) / "settings.json")
        path = Path(folder) / "big.mrc"
        data = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
        with mrcfile.new(path, data) as mrc:
            mrc.voxel_size = 10.0
        viewer = napari.Viewer(show=False)
        _, tomogram = viewer.window.add_plugin_dock_widget(PLUGIN, "Tomogram")
        _, particles = viewer.window.add_plugin_dock_widget(PLUGIN, "Particles")
        tomogram.open_file(path)
        for low in (100.0, 50.0):
            particles.diameter_min.value, particles.diameter_max.value = low, 300.0
            QTest.mouseClick(particles.pick_button.native, Qt.MouseButton.LeftButton)
            wait_for(lambda: False, timeout=1.0)
            clicked = time.perf_counter()
            QTest.mouseClick(particles.cancel_button.native, Qt.MouseButton.LeftButton)
            wait_for(lambda: particles.pick_button.enabled, timeout=60)
            stopped = time.perf_counter() - clicked
            print(f"picker stops after Cancel, diameters {low:g}-300 A: {stopped:.2f} s")
        viewer.close()


if __name__ == "__main__":
    main()
