"""Training: tensors in memory, shuffled batches, validation split, per-epoch metrics, periodic
checkpoints, resume and early stopping. No per-sample Python work in the loop."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.model.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from napari_affinity_vae.model.inference import device
from napari_affinity_vae.model.losses import (
    Schedule,
    affinity_loss,
    kl_divergence,
    reconstruction_loss,
)
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.progress import Progress


@dataclass
class TrainingConfig:
    """How to train. ``gamma`` at 0 and ``pose_dims`` 0 make a plain beta-VAE."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    beta: Schedule = field(default_factory=lambda: Schedule("cyclical_linear", high=1e-3))
    gamma: Schedule = field(default_factory=lambda: Schedule("flat", high=1.0))
    validation_fraction: float = 0.1
    seed: int = 0
    checkpoint_every: int = 0
    patience: int = 0
    augment: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        values = dict(data)
        for key in ("beta", "gamma"):
            if isinstance(values.get(key), dict):
                values[key] = Schedule(**values[key])
        return cls(**values)


@dataclass
class TrainingData:
    """Normalised boxes (n, *box), integer class labels, class names and their affinity."""

    boxes: np.ndarray
    labels: np.ndarray
    classes: list[str]
    affinity: np.ndarray
    voxel_size: float
    description: str = ""
    angles: np.ndarray | None = None  # ground-truth RELION (rot, tilt, psi) per box, if known


def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and validation row indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * fraction) if n > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train(
    data: TrainingData,
    architecture: Architecture,
    config: TrainingConfig,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: Progress | None = None,
    command: str = "",
) -> tuple[AffinityVAE, ModelCard, pd.DataFrame]:
    """Train (or go on training ``resume``); write ``out``.safetensors/.json and
    ``out``.metrics.csv when ``out`` is given. Returns the model, its card and per-epoch metrics."""
    torch.manual_seed(config.seed)
    target = device()
    if resume is not None:
        model, card = load_checkpoint(resume)
        history = pd.DataFrame(card.training.get("history", []))
    else:
        model = AffinityVAE(architecture)
        history = pd.DataFrame()
    card = ModelCard(
        architecture=model.architecture,
        voxel_size=data.voxel_size,
        classes=list(data.classes),
        affinity=np.asarray(data.affinity, dtype=float).round(6).tolist(),
    )
    model.to(target)
    boxes = torch.from_numpy(np.ascontiguousarray(data.boxes, dtype=np.float32)).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
    affinity = torch.tensor(np.array(data.affinity, dtype=np.float32), device=target)
    train_rows, val_rows = split(len(boxes), config.validation_fraction, config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    start_epoch = len(history)
    best, stale = np.inf, 0
    epochs = range(start_epoch, config.epochs)
    rows = list(history.to_dict("records"))
    bar = progress(epochs, desc="training") if progress else epochs
    for epoch in bar:
        beta = config.beta.value(epoch, config.epochs)
        gamma = config.gamma.value(epoch, config.epochs)
        tic = time.perf_counter()
        model.train()
        order = torch.from_numpy(train_rows)[torch.randperm(len(train_rows), generator=generator)]
        sums = np.zeros(4)
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            x = boxes[index].to(target)
            if config.augment:
                x = _rotate_batch(x, generator)
            terms = _loss_terms(model, x, labels[index].to(target), affinity)
            loss = terms[0] + beta * terms[1] + gamma * terms[2]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sums += np.array([loss.item(), *(t.item() for t in terms)]) * len(index)
        seconds = time.perf_counter() - tic
        row = {"epoch": epoch + 1, "beta": beta, "gamma": gamma}
        row |= dict(
            zip(("loss", "reconstruction", "kl", "affinity"), sums / len(order), strict=True)
        )
        row |= {"samples_per_second": len(order) / seconds}
        if len(val_rows):
            val = _evaluate(model, boxes[val_rows], labels[val_rows], affinity, target, beta, gamma)
            row |= {f"val_{k}": v for k, v in val.items()}
        rows.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{row[k]:.4g}" for k in ("reconstruction", "kl", "affinity")})
        card.training = {
            "data": data.description,
            "command": command,
            "config": config.to_dict(),
            "epochs_done": epoch + 1,
            "history": rows,
        }
        if out is not None:
            _write_metrics(Path(out), rows)
            if config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
                save_checkpoint(model, card, out)
        score = row.get("val_loss", row["loss"])
        best, stale = (score, 0) if score < best else (best, stale + 1)
        if config.patience and stale >= config.patience:
            break
    model.eval()
    model.cpu()
    if out is not None:
        save_checkpoint(model, card, out)
    return model, card, pd.DataFrame(rows)


def _loss_terms(
    model: AffinityVAE, x: torch.Tensor, labels: torch.Tensor, affinity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    reconstruction, mu, log_variance, _ = model(x)
    return (
        reconstruction_loss(reconstruction, x),
        kl_divergence(mu, log_variance),
        affinity_loss(mu, labels, affinity),
    )


@torch.inference_mode()
def _evaluate(
    model: AffinityVAE,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    affinity: torch.Tensor,
    target: torch.device,
    beta: float,
    gamma: float,
    batch_size: int = 256,
) -> dict[str, float]:
    model.eval()
    sums = np.zeros(3)
    for start in range(0, len(boxes), batch_size):
        x = boxes[start : start + batch_size].to(target)
        terms = _loss_terms(model, x, labels[start : start + batch_size].to(target), affinity)
        sums += np.array([t.item() for t in terms]) * len(x)
    recon, kl, aff = sums / len(boxes)
    return {
        "loss": recon + beta * kl + gamma * aff,
        "reconstruction": recon,
        "kl": kl,
        "affinity": aff,
    }


def _rotate_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random rotation by a multiple of 90 degrees about a random axis, for the whole batch."""
    spatial = list(range(2, x.ndim))
    axes = torch.randperm(len(spatial), generator=generator)[:2].tolist()
    turns = int(torch.randint(0, 4, (1,), generator=generator))
    return torch.rot90(x, turns, dims=(spatial[axes[0]], spatial[axes[1]]))


def _write_metrics(out: Path, rows: list[dict]) -> None:
    path = out.with_suffix(".metrics.csv")
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
