"""The bundled model: where it ships, and the one recipe that rebuilds it from scratch.

``avae train --preset bundled --out src/napari_affinity_vae/model/data/bundled`` simulates the
training set (every built-in class, 32^3 boxes at 10 A/voxel, the sample data's SNR, seed 11;
each particle's box centred on it and, where the built-in picker finds it, a second box where
the picker puts it, so that picks embed as well as true centres) and trains with the settings
below.
"""

from __future__ import annotations

from pathlib import Path

from napari_affinity_vae.model.checkpoint import ModelCard, load_checkpoint
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.train import TrainingConfig

BUNDLED = Path(__file__).parent / "data" / "bundled.safetensors"
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


def load_bundled() -> tuple[AffinityVAE, ModelCard]:
    """The model that ships with the package, in eval mode."""
    return load_checkpoint(BUNDLED)


def checkpoint_path(name: str | Path) -> Path:
    """The checkpoint ``name`` stands for: the bundled model's for "bundled", else ``name``."""
    return BUNDLED if str(name) == "bundled" else Path(name)
