"""Open napari with the plugin's dock widgets arranged; optionally write a screenshot and exit."""

from __future__ import annotations

from pathlib import Path

from napari_affinity_vae.io.tomogram import open_tomogram

PLUGIN = "napari-affinity-vae"
DOCK_WIDGETS = ("Tomogram", "Particles", "Embed", "Latent scatter", "Decode", "Export")
SAMPLE_KEY = "simulated_tomogram"
DEMO_SLAB = 50.0  # Angstrom averaged in the plane view, so particles stand out from the noise


def run_demo(
    tomogram: Path | None = None, *, voxel_size: float | None = None, screenshot: Path | None = None
) -> int:
    """Start napari with every dock widget open and the sample tomogram (or ``tomogram``);
    return after a screenshot, or when the window is closed."""
    import napari

    if tomogram is not None:
        open_tomogram(tomogram, voxel_size, require_voxel_size=False)  # fail early, clearly
    viewer = napari.Viewer(title="napari-affinity-vae", show=screenshot is None)
    widgets = {name: viewer.window.add_plugin_dock_widget(PLUGIN, name)[1] for name in DOCK_WIDGETS}
    if tomogram is None:
        viewer.open_sample(PLUGIN, SAMPLE_KEY)
        viewer.layers.selection.active = viewer.layers[
            0
        ]  # the tomogram's controls, not the hidden truth
    else:
        widgets["Tomogram"].open_file(tomogram)
        if voxel_size is not None:
            widgets["Tomogram"].voxel_size.value = voxel_size
    widgets["Tomogram"].slab.value = DEMO_SLAB
    if screenshot is not None:
        viewer.window._qt_window.resize(1400, 900)
        viewer.screenshot(str(screenshot), canvas_only=False)
        viewer.close()
        return 0
    napari.run()
    return 0
