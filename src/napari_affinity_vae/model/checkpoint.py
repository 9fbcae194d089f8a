"""Checkpoints: ``safetensors`` weights beside a JSON model card. No pickle is ever loaded.

``NAME.safetensors`` holds the weights; ``NAME.json`` the card: architecture, the box and voxel size
the model expects, class names and affinity matrix, how boxes are normalised, training data and
command, metrics and library versions.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from napari_affinity_vae import __version__
from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.atomic import atomic_files, unwritable
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.text import strict_json

FORMAT = "napari-affinity-vae/1"


class CheckpointError(InputFileError):
    """A checkpoint is missing, unreadable, or does not fit what it is used for."""


@dataclass
class ModelCard:
    """What a model is and what it expects. Input boxes are normalised per box to mean 0 and
    standard deviation 1, with protein dark (``contrast``) as in an uninverted tomogram."""

    architecture: Architecture
    voxel_size: float
    classes: list[str]
    affinity: list[list[float]]
    normalisation: str = "per-box mean 0, standard deviation 1"
    contrast: str = "dark"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    path: Path | None = field(default=None, compare=False)  # the card's file, once read; not saved

    def describe(self) -> str:
        a = self.architecture
        return (
            f"{a.box}^{a.ndim} boxes at {self.voxel_size:g} Å/voxel, {len(self.classes)} classes, "
            f"latent {a.latent_dims} + pose {a.pose_dims}"
        )

    def to_json(self) -> str:
        data = asdict(self)
        del data["path"]
        data["architecture"] = self.architecture.to_dict()
        return strict_json(data)


def library_versions() -> dict[str, str]:
    import safetensors

    return {
        "napari-affinity-vae": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


CHECKPOINT_SUFFIXES = (".safetensors", ".json", ".metrics.csv")


def checkpoint_file(path: str | Path, suffix: str) -> Path:
    """The file ``NAME`` + ``suffix`` (one of ``CHECKPOINT_SUFFIXES``) of a checkpoint named by
    any of its files or by ``NAME`` alone, whose dots are kept ("model_v1.5")."""
    path = Path(path)
    name = next(
        (path.name[: -len(s)] for s in CHECKPOINT_SUFFIXES if path.name.endswith(s)), path.name
    )
    return path.with_name(name + suffix)


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """The weights (``NAME.safetensors``) and card (``NAME.json``) of checkpoint ``path``."""
    return checkpoint_file(path, ".safetensors"), checkpoint_file(path, ".json")


def save_checkpoint(model: AffinityVAE, card: ModelCard, path: str | Path) -> tuple[Path, Path]:
    """Write the weights and card of checkpoint ``path`` (:func:`checkpoint_files`): both are
    written before either replaces a file, so a failure leaves the old pair as it was; one that
    cannot be written raises :class:`CheckpointError` naming it."""
    weights, card_path = checkpoint_files(path)
    for target in (weights, card_path):
        if target.is_dir():
            raise CheckpointError(target, "is a folder: choose another name")
    card.versions = card.versions or library_versions()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        with atomic_files(weights.parent, [weights.name, card_path.name]) as staged:
            staged[0].write_bytes(save(state, metadata={"format": FORMAT}))
            staged[1].write_text(card.to_json())
    except OSError as err:
        raise unwritable(weights, err, CheckpointError) from None
    return weights, card_path


def load_checkpoint(path: str | Path) -> tuple[AffinityVAE, ModelCard]:
    """Load a model and its card from ``NAME.safetensors`` or ``NAME.json`` (the other beside it),
    in eval mode on the CPU. Every problem raises :class:`CheckpointError` naming the file."""
    weights, card_path = checkpoint_files(path)
    card = read_card(card_path)
    if not weights.is_file():
        raise CheckpointError(weights, "no such file (the weights that go with the model card)")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(weights, f"not a readable safetensors file ({err})") from None
    model = AffinityVAE(card.architecture)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        details = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:4])}" if missing else "",
                f"unexpected {', '.join(unexpected[:4])}" if unexpected else "",
                ", ".join(
                    f"{k} is {tuple(state[k].shape)}, not {tuple(expected[k].shape)}"
                    for k in wrong[:4]
                ),
            )
            if part
        )
        raise CheckpointError(weights, f"weights do not fit the card's architecture: {details}")
    model.load_state_dict(state)
    model.eval()
    return model, card


def read_card(path: str | Path) -> ModelCard:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file (a model card)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(path, f"not a readable JSON model card ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(path, f"not a model card of format {FORMAT!r} (found {found!r})")
    try:
        architecture = Architecture(**data.pop("architecture"))
        data.pop("path", None)
        card = ModelCard(architecture=architecture, **data, path=path)
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(path, f"the model card is incomplete or invalid ({err})") from None
    size = card.voxel_size
    if isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size < np.inf:
        raise CheckpointError(
            path, f"voxel_size must be a positive number of Angstrom, not {size!r}"
        )
    n = len(card.classes)
    if np.shape(card.affinity) != (n, n):
        raise CheckpointError(path, f"the affinity matrix is not {n} x {n} for {n} classes")
    return card


def check_fits(
    card: ModelCard, box: int, voxel_size: float, source: str | Path, ndim: int = 3
) -> None:
    """Raise unless ``ndim``-dimensional boxes of ``box`` voxels at ``voxel_size`` are what the
    model expects; ``source`` is the file named in the error (the checkpoint's card)."""
    a = card.architecture
    if box != a.box or ndim != a.ndim or not np.isclose(voxel_size, card.voxel_size, rtol=0.02):
        raise CheckpointError(
            source,
            f"model expects {a.box}^{a.ndim} boxes at {card.voxel_size:g} A/voxel, "
            f"got {box}^{ndim} boxes at {voxel_size:g} A/voxel",
        )
