"""napari sample data: a simulated tomogram with its ground-truth particles (hidden)."""

from __future__ import annotations

from napari_affinity_vae.layers import image_layer_data, particles_layer_data
from napari_affinity_vae.schema import CLASS_NAME
from napari_affinity_vae.simulate.molecules import extent
from napari_affinity_vae.simulate.tomogram import SimulatedTomogram, Simulation, simulate_tomogram

SAMPLE = Simulation(
    shape=(200, 400, 400), particles=300, snr=0.1, seed=0, vesicles=2, fiducials=4, name="sample"
)


def make_sample_tomogram() -> list[tuple]:
    """The sample tomogram (10 A/voxel, every built-in class) and its ground truth as Points."""
    return sample_layers(simulate_tomogram(SAMPLE))


def sample_layers(result: SimulatedTomogram) -> list[tuple]:
    """Layer data for a simulated tomogram: the Image, then its ground truth as Points coloured
    by class and as large as each molecule."""
    voxel = result.settings.voxel_size
    image = image_layer_data(
        result.tomogram,
        voxel,
        result.settings.name,
        {"voxel_size_from_header": True, "path": None, "simulation": repr(result.settings)},
    )
    data, kwargs, kind = particles_layer_data(
        result.particles,
        f"{result.settings.name} ground truth",
        {"tomo_name": result.settings.name},
        colour_by=CLASS_NAME,
    )
    kwargs.update(visible=False, face_color=CLASS_NAME, shading="spherical")
    kwargs["face_color_cycle"] = kwargs["border_color_cycle"]
    kwargs["size"] = [extent(name) / voxel for name in result.particles[CLASS_NAME]]
    return [image, (data, kwargs, kind)]
