"""The bundled models: where they ship, and the one recipe that rebuilds each from scratch.

``avae train --preset bundled --out src/napari_affinity_vae/model/data/bundled`` simulates the
training set (every built-in class, 32^3 boxes at 10 A/voxel, the sample data's SNR, seed 11;
each particle's box centred on it and, where the built-in picker finds it, a second box where
the picker puts it, so that picks embed as well as true centres) and trains with the settings
below. ``--preset bundled-splat --out .../bundled_splat`` trains the second model, a Gaussian-splat
decoder whose pose is a rotation, on the same set with the same budget and pose consistency.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from napari_affinity_vae.model.checkpoint import ModelCard, load_checkpoint
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.train import TrainingConfig

BUNDLED = Path(__file__).parent / "data" / "bundled.safetensors"
BUNDLED_SPLAT = BUNDLED.with_name("bundled_splat.safetensors")
TRAINING_SEED = 11
PER_CLASS = 600
DESCRIPTION = (
    f"simulated subtomograms: {PER_CLASS} per class of all nine built-in classes, 32^3 boxes at "
    f"10 A/voxel from crowded 64 x 256 x 256 tomograms (SNR 0.1 per tilt, +-60 degrees in 3 degree "
    f"steps, 3 um defocus), seed {TRAINING_SEED}; each centred on its particle and, where the "
    f"built-in picker finds it, once more where the picker puts it"
)
ARCHITECTURE = Architecture(box=32, depth=3, capacity=8, latent_dims=8, pose_dims=1)
CONFIG = TrainingConfig(
    epochs=25,
    batch_size=64,
    learning_rate=1e-3,
    beta=Schedule("cyclical_linear", high=1e-3),
    gamma=Schedule("flat", high=1.0),
    seed=0,
)


SPLAT_ARCHITECTURE = dataclasses.replace(ARCHITECTURE, decoder="splat", pose_dims=4)
SPLAT_CONFIG = dataclasses.replace(CONFIG, pose=Schedule("flat", high=1.0))
# a preset's name: its weights, architecture and training settings
PRESETS = {
    "bundled": (BUNDLED, ARCHITECTURE, CONFIG),
    "bundled-splat": (BUNDLED_SPLAT, SPLAT_ARCHITECTURE, SPLAT_CONFIG),
}


def load_bundled(name: str = "bundled") -> tuple[AffinityVAE, ModelCard]:
    """A model that ships with the package ("bundled" or "bundled-splat"), in eval mode."""
    return load_checkpoint(PRESETS[name][0])


def checkpoint_path(name: str | Path) -> Path:
    """The checkpoint ``name`` stands for: a bundled model's for its preset's name ("bundled",
    "bundled-splat"), else ``name``."""
    return PRESETS[str(name)][0] if str(name) in PRESETS else Path(name)


def preset_name(weights: Path) -> str | None:
    """The preset whose weights ``weights`` are, if any."""
    return next((name for name, (path, _, _) in PRESETS.items() if path == weights), None)
