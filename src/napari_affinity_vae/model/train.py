"""Training: tensors in memory, shuffled batches, validation split, per-epoch metrics, periodic
checkpoints, resume, fine-tuning and early stopping. No per-sample Python work in the loop, and
no wait for the device per batch: the loss terms are summed where they are computed. Inside a
``torchrun`` process group, trains with DistributedDataParallel (:mod:`.distributed`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_affinity_vae.errors import TrainingError
from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.model import distributed
from napari_affinity_vae.model.augment import augment, random_rotations, turn
from napari_affinity_vae.model.checkpoint import (
    ModelCard,
    check_fits,
    checkpoint_file,
    load_checkpoint,
    save_checkpoint,
)
from napari_affinity_vae.model.inference import device
from napari_affinity_vae.model.losses import (
    Schedule,
    affinity_loss,
    kl_divergence,
    pose_consistency,
    reconstruction_loss,
    total_correlation,
)
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.splats import turns_pose
from napari_affinity_vae.progress import Progress

# the loss terms, as the history names them
TERMS = ("reconstruction", "kl", "affinity", "tc", "pose")


AUTO = 0  # a batch size chosen for the set
# an epoch of an automatic batch size takes at least this many steps, in batches of 8 to 64
STEPS_PER_EPOCH, SMALLEST_BATCH, LARGEST_BATCH = 8, 8, 64


@dataclass
class TrainingConfig:
    """How to train. ``gamma`` at 0 and ``pose_dims`` 0 make a plain beta-VAE; ``tc`` weighs
    the latent's total correlation (beta-TCVAE); ``pose`` weighs the pose consistency of a splat
    model (its rotation must turn with a randomly turned copy of each box); ``augment`` turns
    each box by a random rotation. ``batch_size`` 0 chooses one for the set (see
    ``sized_for``)."""

    epochs: int = 40
    batch_size: int = AUTO
    learning_rate: float = 1e-3
    beta: Schedule = field(default_factory=lambda: Schedule("cyclical_linear", high=1e-3))
    gamma: Schedule = field(default_factory=lambda: Schedule("flat", high=1.0))
    tc: Schedule = field(default_factory=lambda: Schedule("flat", high=0.0))
    pose: Schedule = field(default_factory=lambda: Schedule("flat", high=0.0))
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
        for key in ("beta", "gamma", "tc", "pose"):
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


def split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices: ``fraction`` of each class held out at random,
    rounded down, so that a class of fewer than 1 / ``fraction`` boxes is trained on whole
    (a tenth of a tiny set's rarest class is all it has of some particle), and never a class's
    last box."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    held = [  # never a whole class: at least one of each is trained on
        rng.permutation(rows)[: min(int(len(rows) * fraction + 1e-9), len(rows) - 1)]
        for rows in (np.flatnonzero(labels == label) for label in np.unique(labels))
    ]
    validation = np.sort(np.concatenate([np.zeros(0, dtype=int), *held]))
    return np.setdiff1d(np.arange(len(labels)), validation), validation


def sized_for(config: TrainingConfig, labels: np.ndarray) -> TrainingConfig:
    """``config``, its automatic batch size chosen for the set of ``labels``: the largest
    power of two from 8 to 64 that makes at least 8 steps an epoch of the boxes trained on.
    In a set of a few hundred boxes, batches of 64 are one or two steps an epoch, too few to
    train on (see docs/model.md, "Small training sets")."""
    if config.batch_size != AUTO:
        return config
    trained = len(split(labels, config.validation_fraction, config.seed)[0])
    fits = 2 ** int(np.log2(max(trained // STEPS_PER_EPOCH, 1)))
    return replace(config, batch_size=int(np.clip(fits, SMALLEST_BATCH, LARGEST_BATCH)))


@dataclass
class Epoch:
    """One finished epoch: its metrics, every epoch's so far, and the model as it now is (still
    on the training device and still training: copy what you keep)."""

    row: dict
    history: list[dict]
    model: AffinityVAE
    improved: bool  # the best score yet (see ``score``)


def training_epochs(
    data: TrainingData,
    model: AffinityVAE,
    config: TrainingConfig,
    history: list[dict] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Generator[Epoch, None, None]:
    """Train ``model`` epoch by epoch, going on after ``history`` (a resumed run), yielding after
    each epoch; stops early after ``config.patience`` epochs without improvement. Close the
    generator to stop between epochs; ``stop`` returning True ends it within one, before the
    next batch (the epoch unfinished: not yielded). In a process group each process trains on
    its slice of every global batch of ``config.batch_size`` (a last batch smaller than the
    number of processes is skipped) and validates on its share of the held-out boxes; the
    metrics are the whole run's."""
    if not turns_pose(model.architecture) and max(config.pose.low, config.pose.high) > 0:
        raise ValueError("pose consistency needs a splat model whose pose is a 3D rotation")
    config = sized_for(config, data.labels)
    torch.manual_seed(config.seed)
    target = device()
    model.to(target)
    boxes = torch.from_numpy(np.ascontiguousarray(data.boxes, dtype=np.float32)).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
    affinity = torch.tensor(np.array(data.affinity, dtype=np.float32), device=target)
    train_rows, val_rows = split(data.labels, config.validation_fraction, config.seed)
    rank, processes = distributed.world()
    own_val = val_rows[rank::processes]
    val_boxes, val_labels = boxes[own_val], labels[own_val]  # copied once, not every epoch
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    net = model if processes == 1 else distributed.wrap(model)
    generator = torch.Generator().manual_seed(config.seed)
    # the order's generator draws alike in every process; each turns its own boxes
    turns = generator if processes == 1 else torch.Generator().manual_seed(config.seed + 1 + rank)
    consistent = turns_pose(model.architecture) and max(config.pose.low, config.pose.high) > 0
    # the pose consistency's turns come from the order's generator, drawn for the global batch
    # alike in every process (each turns its slice of it), as one process draws them
    checked = generator if consistent else None
    rows = list(history or [])
    best, stale = (score(rows[-1], config) if rows else np.inf), 0  # a resumed run's weights
    for epoch in range(len(rows), config.epochs):
        weights = _weights(config, epoch)
        scale = torch.tensor([1.0, *weights.values()], device=target)
        tic = time.perf_counter()
        model.train()
        order = torch.from_numpy(train_rows)[torch.randperm(len(train_rows), generator=generator)]
        sums = torch.zeros(len(TERMS), dtype=torch.float64, device=target)
        for start in range(0, len(order), config.batch_size):
            if stop is not None and stop():
                return
            index = order[start : start + config.batch_size]
            batch = len(index)
            loss_terms = functools.partial(_loss_terms, turns=checked)
            if processes > 1:
                if batch < processes:
                    break
                index = index.tensor_split(processes)[rank]
                loss_terms = functools.partial(distributed.loss_terms, batch=batch, turns=checked)
            x = boxes[index].to(target)
            if config.augment:
                x = augment(x, turns)
            y = labels[index].to(target)
            terms = training_step(net, optimiser, x, y, affinity, scale, len(order), loss_terms)
            sums += terms * batch
        sums = distributed.all_sum(sums) / processes
        row = {"epoch": epoch + 1, **weights} | _named(sums.cpu().numpy() / len(order), scale)
        row |= {"samples_per_second": len(order) / (time.perf_counter() - tic)}
        if len(val_rows):
            # the same turns every epoch, so that validation losses compare
            fixed = torch.Generator().manual_seed(config.seed) if consistent else None
            val = _evaluate(model, val_boxes, val_labels, affinity, target, fixed) / len(val_rows)
            row |= {f"val_{k}": v for k, v in _named(val, scale).items()}
        _check_finite(row)
        rows.append(row)
        this = score(row, config)
        improved = this < best
        best, stale = (this, 0) if improved else (best, stale + 1)
        yield Epoch(row, rows, model, improved)
        if config.patience and stale >= config.patience:
            break


def score(row: dict, config: TrainingConfig) -> float:
    """How good an epoch is: its validation loss (its training loss without validation), every
    term at its schedule's full weight, so that epochs of a cyclical or ramped schedule
    compare."""
    prefix = "val_" if "val_loss" in row else ""
    weights = [1.0, *(schedule.high for schedule in _schedules(config).values())]
    return float(sum(w * row.get(prefix + t, 0.0) for w, t in zip(weights, TERMS, strict=True)))


def training_step(
    model: AffinityVAE,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    labels: torch.Tensor,
    affinity: torch.Tensor,
    scale: torch.Tensor,
    dataset_size: int,
    loss_terms: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """One optimiser step on the batch ``x`` (of a training set of ``dataset_size`` boxes),
    minimising ``scale`` (1, beta, gamma, tc, pose weight) times the ``loss_terms`` (by default
    the batch's); returns the terms, in ``TERMS``' order, detached and where they were computed."""
    terms = (loss_terms or _loss_terms)(model, x, labels, affinity, dataset_size)
    optimiser.zero_grad(set_to_none=True)
    (scale @ terms).backward()
    optimiser.step()
    return terms.detach()


def training_card(
    model: AffinityVAE,
    data: TrainingData,
    config: TrainingConfig,
    history: list[dict],
    command: str = "",
    init: str = "",
) -> ModelCard:
    """The card of a model trained on ``data`` with ``config`` for ``history``'s epochs;
    ``init`` names the model it was fine-tuned from (empty: trained from scratch)."""
    training = {"data": data.description, "boxes": len(data.boxes), "command": command}
    training["config"] = config.to_dict()
    training |= {"init": init} if init else {}
    return ModelCard(
        architecture=model.architecture,
        voxel_size=data.voxel_size,
        classes=list(data.classes),
        affinity=np.asarray(data.affinity, dtype=float).round(6).tolist(),
        training=training | {"epochs_done": len(history), "history": history},
    )


def train(
    data: TrainingData,
    architecture: Architecture,
    config: TrainingConfig,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: Progress | None = None,
    command: str = "",
    init: str | Path | None = None,
    keep_best: bool = False,
) -> tuple[AffinityVAE, ModelCard, pd.DataFrame]:
    """Train ``architecture`` from scratch, go on training ``resume`` (from the epoch its
    weights are of, holding out the same boxes), or fine-tune ``init`` ("bundled" or a
    checkpoint: its architecture and weights, ``data``'s classes and affinity, epochs counted
    from 0); write ``out``.safetensors/.json and ``out``.metrics.csv when ``out`` is given (by
    the first process only in a process group). The model kept is the last epoch's, or with
    ``keep_best`` the best epoch's (see ``score``; its card's ``best_epoch``). Returns the
    model, its card and per-epoch metrics."""
    if resume is not None and init is not None:
        raise ValueError("give a run to resume or a model to fine-tune (init), not both")
    config = sized_for(config, data.labels)  # the card names the batch size trained with
    history: list[dict] = []
    if resume is not None:
        model, card = starting_model(resume, data)
        _check_same_data(card, data)
        _check_same_split(card, config)
        history = list(card.training.get("history", []))[: card.training.get("best_epoch")]
        if len(history) >= config.epochs:
            raise TrainingError(
                f"{card.path or resume}: its weights are of epoch {len(history)}, and "
                f"{config.epochs} epochs were asked for: ask for more to go on training"
            )
    elif init is not None:
        model, _ = starting_model(init, data)
    else:
        model = new_model(architecture, config.seed)
    card_of = functools.partial(
        training_card, data=data, config=config, command=command, init=str(init or "")
    )
    epochs = training_epochs(data, model, config, history)
    if distributed.world()[0] > 0:
        progress, out = None, None
    bar = (
        progress(epochs, desc="training", total=config.epochs, initial=len(history))
        if progress
        else epochs
    )
    # the best epoch and its weights; a resumed run's own are the best so far
    best = (len(history), weights_copy(model) if keep_best and history else None)
    for epoch in bar:
        history = epoch.history
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{epoch.row[k]:.4g}" for k in TERMS})
        if keep_best and epoch.improved:
            best = (len(history), weights_copy(model))
        if out is not None:
            _write_metrics(Path(out), history)
            if config.checkpoint_every and len(history) % config.checkpoint_every == 0:
                save_checkpoint(model, card_of(model, history=history), out)
    if keep_best and best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    model.cpu()
    card = card_of(model, history=history)
    if keep_best:
        card.training["best_epoch"] = best[0]
    if out is not None:
        save_checkpoint(model, card, out)
    return model, card, pd.DataFrame(history)


def weights_copy(model: AffinityVAE) -> dict[str, torch.Tensor]:
    """A CPU copy of ``model``'s weights, which training goes on without changing."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _check_same_data(card: ModelCard, data: TrainingData) -> None:
    """Refuse to resume a run on another set: its best epoch, its validation losses and its
    card would mix two sets."""
    before = card.training.get("boxes", len(data.boxes))  # older cards do not say
    if list(card.classes) != list(data.classes) or before != len(data.boxes):
        raise TrainingError(
            f"{card.path}: this run was trained on {card.training.get('data') or 'another set'}"
            f", classes {', '.join(card.classes)}; not on {data.description}, classes "
            f"{', '.join(data.classes)}: resume it on the same set, or --init it to start a new "
            "run from its weights"
        )


def _check_same_split(card: ModelCard, config: TrainingConfig) -> None:
    """Refuse to resume a run holding out other boxes than it did: its validation losses
    would no longer compare, and boxes it validated on would be trained on."""
    before = card.training.get("config", {})
    for key, option in (("validation_fraction", "--validation"), ("seed", "--seed")):
        if key in before and before[key] != getattr(config, key):
            raise TrainingError(
                f"{card.path}: this run was trained with {option} {before[key]}, not "
                f"{getattr(config, key)}; give {option} {before[key]} to hold out the same "
                "boxes, or --init it to start a new run from its weights"
            )


def new_model(architecture: Architecture, seed: int) -> AffinityVAE:
    """A model of ``architecture`` with fresh weights drawn from ``seed`` (the same seed, the
    same weights), leaving torch's global generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AffinityVAE(architecture)


def starting_model(source: str | Path, data: TrainingData) -> tuple[AffinityVAE, ModelCard]:
    """The model a run starts from: "bundled" or a checkpoint, refused (naming its card) unless
    ``data``'s boxes are the size, dimensionality and voxel size it takes."""
    from napari_affinity_vae.model.bundled import checkpoint_path  # it imports this module

    model, card = load_checkpoint(checkpoint_path(source))
    box, ndim = data.boxes.shape[-1], data.boxes.ndim - 1
    check_fits(card, box, data.voxel_size, card.path or source, ndim)
    return model, card


def _schedules(config: TrainingConfig) -> dict[str, Schedule]:
    """The schedules of the loss terms after the reconstruction (``TERMS``' order), by the
    history's names of their weights."""
    return {
        "beta": config.beta,
        "gamma": config.gamma,
        "tc_weight": config.tc,
        "pose_weight": config.pose,
    }


def _weights(config: TrainingConfig, epoch: int) -> dict[str, float]:
    """The weights in ``epoch`` of the loss terms after the reconstruction."""
    return {name: s.value(epoch, config.epochs) for name, s in _schedules(config).items()}


def _named(terms: np.ndarray, scale: torch.Tensor) -> dict[str, float]:
    """The weighted loss and each of the mean ``terms`` by name."""
    loss = float(scale.cpu().numpy() @ terms)
    return {"loss": loss, **dict(zip(TERMS, terms.tolist(), strict=True))}


def _loss_terms(
    model: AffinityVAE,
    x: torch.Tensor,
    labels: torch.Tensor,
    affinity: torch.Tensor,
    dataset_size: int,
    turns: torch.Generator | None = None,
) -> torch.Tensor:
    """The loss terms of a batch, in ``TERMS``' order, as one tensor; the pose consistency with
    copies turned by rotations drawn from ``turns`` (None: 0)."""
    reconstruction, mu, log_variance, pose, latent = model.forward_with_latent(x)
    consistency = mu.new_zeros(())
    if turns is not None:
        rotations, turned = turned_copies(x, turns)
        consistency = pose_consistency(pose, model.encode(turned)[2], rotations)
    return torch.stack(
        [
            reconstruction_loss(reconstruction, x),
            kl_divergence(mu, log_variance),
            affinity_loss(mu, labels, affinity),
            total_correlation(latent, mu, log_variance, dataset_size),
            consistency,
        ]
    )


def turned_copies(
    x: torch.Tensor, turns: torch.Generator, batch: int | None = None, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rotations (n, 3, 3) on (x, y, z), on ``x``'s device, and the boxes ``x`` turned
    by them: rows ``offset`` on of those drawn for a global ``batch`` (default: ``x``'s)."""
    drawn = random_rotations(batch or len(x), 3, turns)[offset : offset + len(x)]  # (z, y, x)
    return drawn.flip(-1, -2).transpose(1, 2).to(x), turn(x, drawn)


@torch.inference_mode()
def _evaluate(
    model: AffinityVAE,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    affinity: torch.Tensor,
    target: torch.device,
    turns: torch.Generator | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """The loss terms of held-out ``boxes`` in eval mode (the latent is ``mu``), summed over the
    boxes (and over the processes' boxes in a process group); the pose consistency with
    rotations from ``turns``."""
    model.eval()
    sums = torch.zeros(len(TERMS), dtype=torch.float64, device=target)
    for start in range(0, len(boxes), batch_size):
        x = boxes[start : start + batch_size].to(target)
        y = labels[start : start + batch_size].to(target)
        sums += _loss_terms(model, x, y, affinity, len(boxes), turns) * len(x)
    return distributed.all_sum(sums).cpu().numpy()


def _check_finite(row: dict) -> None:
    """Refuse to go on from an epoch whose loss is NaN or infinite: its weights are too, and no
    checkpoint of them is written."""
    bad = [k for k in ("loss", "val_loss") if k in row and not np.isfinite(row[k])]
    if bad:
        values = ", ".join(f"{k} {row[k]}" for k in bad)
        raise TrainingError(
            f"training diverged in epoch {row['epoch']} ({values}); no checkpoint of it was "
            "written. Check the boxes for NaN or extreme values, or lower the learning rate"
        )


def _write_metrics(out: Path, rows: list[dict]) -> None:
    path = checkpoint_file(out, ".metrics.csv")
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
