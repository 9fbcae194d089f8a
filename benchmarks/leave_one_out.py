"""The affinity-VAE paper's central claim: a molecule left out of training lands in latent space
nearest the training class the affinity matrix calls most similar.

Each built-in class is left out in turn: an affinity-VAE (the bundled model's architecture and
settings) and a beta-VAE (the same without the affinity term and the pose channel) are trained on
the other eight, and the left-out class's particles, from a tomogram of another seed, are
embedded. A particle lands nearest the training class whose mean latent direction is closest to
its own (cosine); the figure is the share of particles landing on the class most similar by
affinity, and whether the class's mean lands there. Three other readings of "nearest" are kept
beside it: the nearest class centroid (Euclidean), the majority of the 10 nearest training
particles (cosine), and the mean direction read from latents averaged over 8 random turns of
each box (known and unseen alike), which takes out what orientation leaves in a particle's
latent.

Resumable: every finished (class, method) is written to OUT as it finishes, with the settings it
ran with; a later run with the same settings skips it. The simulated sets are kept beside OUT.

``--affinity CSV`` trains and scores with another matrix of the nine classes (as ``avae affinity``
or ``benchmarks/centre_affinity.py`` write one) instead of the shipped map correlations: a fold
trains on the eight kept classes' part of it, and "most similar" is read from the left-out row.

``--homologues SCALE`` adds to the training set a homologue of each built-in class (its
pseudo-atoms scaled by SCALE about their centre: the same fold, another size), simulated as a
user's molecule; the affinity of the eighteen classes comes from their maps (the new pairs
searched once and kept beside OUT). A left-out class's homologue stays in training, so every
unseen class has a clearly most similar known one.

Usage: python benchmarks/leave_one_out.py OUT.json [--per-class 200] [--epochs 15]
       [--classes ribosome ...] [--methods affinity-vae beta-vae] [--gamma 1] [--affinity CSV]
       [--homologues 0.85] [--latent-dims 16] [--augment]

``--augment`` trains with every box turned by a random rotation (``avae train --augment``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_affinity_vae.io.affinity import load_affinity
from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.io.subtomograms import write_subtomograms
from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.model import bundled
from napari_affinity_vae.model.augment import random_rotations, turn
from napari_affinity_vae.model.datasets import load_training_set
from napari_affinity_vae.model.inference import encode
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.train import TrainingData, train
from napari_affinity_vae.simulate.affinity import class_affinity, library_affinity
from napari_affinity_vae.simulate.density import points_to_density
from napari_affinity_vae.simulate.molecules import (
    ATOM_SIGMA,
    MOLECULES,
    SPACING,
    box_holding,
    pseudo_atoms,
)
from napari_affinity_vae.simulate.subtomograms import simulate_subtomograms
from napari_affinity_vae.simulate.tomogram import Simulation, class_maps

METHODS = ("affinity-vae", "beta-vae")
TRAIN_SEED, TEST_SEED = 21, 22
HOMOLOGUE_VOXEL = 5.0  # Angstrom: the homologues' maps are rendered finer than simulated
NEIGHBOURS = 10  # the k of the k-nearest-neighbour reading of where a particle lands
TURNS = 8  # random turns a box's latent is averaged over in the "turned" reading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--classes", nargs="+", default=list(MOLECULES))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument(
        "--gamma", type=float, default=1.0, help="the affinity term's weight (bundled: 1)"
    )
    parser.add_argument(
        "--affinity", type=Path, help="CSV of the nine classes' affinity (default: the maps')"
    )
    parser.add_argument(
        "--homologues", type=float, help="train with a homologue of each class, scaled by this"
    )
    parser.add_argument("--latent-dims", type=int, help="default: the bundled model's (8)")
    parser.add_argument("--augment", action="store_true", help="train on randomly turned boxes")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the trainings' weights and batches"
    )
    args = parser.parse_args()
    settings = {
        "per_class": args.per_class,
        "epochs": args.epochs,
        "test": args.test_per_class,
        "gamma": args.gamma,
    }
    if args.affinity:
        settings["affinity"] = args.affinity.name
    if args.homologues:
        settings["homologues"] = args.homologues
    if args.latent_dims:
        settings["latent_dims"] = args.latent_dims
    if args.augment:
        settings["augment"] = True
    if args.seed:
        settings["seed"] = args.seed
    results = _load(args.out, settings)
    training, maps_affinity = Simulation(seed=TRAIN_SEED), None
    if args.homologues:
        training = _with_homologues(training, args.out.with_suffix(".maps"), args.homologues)
        maps_affinity = _maps_affinity(training, args.out)
    train_set = _simulated(args.out.with_suffix(".train"), training, args.per_class, maps_affinity)
    if args.affinity:
        matrix = load_affinity(args.affinity).loc[train_set.classes, train_set.classes]
        train_set = dataclasses.replace(train_set, affinity=matrix.to_numpy(dtype=float))
    test_set = _simulated(
        args.out.with_suffix(".test"), Simulation(seed=TEST_SEED), args.test_per_class
    )
    for left_out in args.classes:
        for method in args.methods:
            key = f"{left_out}/{method}"
            if key in results["folds"]:
                continue
            tic = time.perf_counter()
            fold = leave_out(
                train_set,
                test_set,
                left_out,
                method,
                args.epochs,
                args.gamma,
                args.latent_dims,
                args.augment,
                args.seed,
            )
            fold["minutes"] = (time.perf_counter() - tic) / 60
            results["folds"][key] = fold
            _save(args.out, results)
            print(_line(key, fold), flush=True)
    _summarise(results["folds"], args.methods)


def leave_out(
    train_set: TrainingData,
    test_set: TrainingData,
    left_out: str,
    method: str,
    epochs: int,
    gamma: float = 1.0,
    latent_dims: int | None = None,
    augment: bool = False,
    seed: int = 0,
) -> dict:
    """Train without ``left_out``; where its test particles land."""
    kept = [c for c in train_set.classes if c != left_out]
    data = _subset(train_set, kept)
    architecture = bundled.ARCHITECTURE
    if latent_dims:
        architecture = dataclasses.replace(architecture, latent_dims=latent_dims)
    config = dataclasses.replace(
        bundled.CONFIG,
        epochs=epochs,
        gamma=Schedule("flat", high=gamma),
        augment=augment,
        seed=seed,
    )
    if method == "beta-vae":
        architecture = dataclasses.replace(architecture, pose_dims=0)
        config = dataclasses.replace(config, gamma=Schedule("flat", high=0.0))
    torch.manual_seed(seed)
    model, _, _ = train(data, architecture, config)
    known = encode(model, data.boxes, error=False)["mu"]
    unseen_boxes = test_set.boxes[_rows(test_set, left_out)]
    unseen = encode(model, unseen_boxes, error=False)["mu"]
    centres = np.stack([_unit(known[data.labels == i]).mean(axis=0) for i in range(len(kept))])
    cosine = _unit(unseen) @ _unit(centres).T
    landed = np.array(kept)[cosine.argmax(axis=1)]
    full = train_set.affinity[train_set.classes.index(left_out)]
    similar = max(kept, key=lambda c: full[train_set.classes.index(c)])
    mean_lands = kept[int(np.argmax(_unit(centres) @ _unit(_unit(unseen).mean(axis=0))))]
    shares = {c: float(np.mean(landed == c)) for c in kept}
    centroids = np.stack([known[data.labels == i].mean(axis=0) for i in range(len(kept))])
    distances = np.linalg.norm(unseen[:, None] - centroids[None], axis=-1)
    nearest = np.argsort(-(_unit(unseen) @ _unit(known).T), axis=1)[:, :NEIGHBOURS]
    votes = np.apply_along_axis(np.bincount, 1, data.labels[nearest], minlength=len(kept))
    known_turned, unseen_turned = (_turned_mu(model, b) for b in (data.boxes, unseen_boxes))
    turned_centres = np.stack(
        [_unit(known_turned[data.labels == i]).mean(axis=0) for i in range(len(kept))]
    )
    others = {  # other readings of "nearest": Euclidean centroid, cosine k nearest neighbours,
        # mean direction of latents averaged over turns
        "euclidean": np.array(kept)[distances.argmin(axis=1)],
        f"knn{NEIGHBOURS}": np.array(kept)[votes.argmax(axis=1)],
        f"turned{TURNS}": np.array(kept)[
            (_unit(unseen_turned) @ _unit(turned_centres).T).argmax(axis=1)
        ],
    }
    return {
        "most_similar": similar,
        "share_on_most_similar": shares[similar],
        "mean_lands_on": mean_lands,
        "shares": shares,
        "by_metric": {
            name: {
                "share_on_most_similar": float(np.mean(where == similar)),
                "most_land_on": str(max(kept, key=lambda c: np.sum(where == c))),
            }
            for name, where in others.items()
        },
    }


def _turned_mu(model: torch.nn.Module, boxes: np.ndarray) -> np.ndarray:
    """Each box's latent mean averaged over ``TURNS`` random turns of it (the same turns for
    every fold)."""
    generator = torch.Generator().manual_seed(TEST_SEED)
    x = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))[:, None]
    total = 0.0
    for _ in range(TURNS):
        turned = turn(x, random_rotations(len(x), x.ndim - 2, generator))[:, 0].numpy()
        total = total + encode(model, turned, error=False)["mu"]
    return total / TURNS


def _simulated(
    folder: Path, settings: Simulation, per_class: int, affinity: Path | None = None
) -> TrainingData:
    """The classes' boxes at the bundled model's size, simulated once and kept; the affinity
    from the CSV given, else the built-in classes' shipped one."""
    if not (folder / "subtomograms.mrcs").is_file():
        boxes, table = simulate_subtomograms(settings, per_class, bundled.ARCHITECTURE.box)
        folder.mkdir(parents=True, exist_ok=True)
        write_subtomograms(folder, boxes, table, settings.voxel_size)
    return load_training_set(folder, affinity=affinity, fallback_affinity=library_affinity)


def _with_homologues(settings: Simulation, folder: Path, scale: float) -> Simulation:
    """``settings`` with a homologue of each built-in class (``<name>_homologue``) added: its
    pseudo-atoms scaled by ``scale``, written as a map in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    maps = {}
    for name in MOLECULES:
        points = pseudo_atoms(name) * scale
        box = box_holding(
            2 * np.linalg.norm(points, axis=1).max() + 4 * ATOM_SIGMA, HOMOLOGUE_VOXEL
        )
        weight = (scale * SPACING / HOMOLOGUE_VOXEL) ** 3  # the same protein in a smaller space
        volume = points_to_density(points, weight, HOMOLOGUE_VOXEL, box, ATOM_SIGMA)
        maps[f"{name}_homologue"] = write_tomogram(
            folder / f"{name}_homologue.mrc", volume, HOMOLOGUE_VOXEL
        )
    return dataclasses.replace(settings, classes=(*settings.classes, *maps), molecules=maps)


def _maps_affinity(settings: Simulation, out: Path) -> Path:
    """A CSV of the affinity of ``settings``' classes from their maps, searched once."""
    path = out.with_suffix(".affinity.csv")
    if not path.is_file():
        affinity, _ = class_affinity(class_maps(settings), settings.voxel_size)
        with atomic_path(path) as tmp:
            affinity.to_csv(tmp)
    return path


def _subset(data: TrainingData, classes: list[str]) -> TrainingData:
    rows = np.flatnonzero(np.isin(np.array(data.classes)[data.labels], classes))
    index = [data.classes.index(c) for c in classes]
    relabel = {old: new for new, old in enumerate(index)}
    return TrainingData(
        data.boxes[rows],
        np.array([relabel[label] for label in data.labels[rows]]),
        classes,
        data.affinity[np.ix_(index, index)],
        data.voxel_size,
        description=f"{data.description} without {set(data.classes) - set(classes)}",
    )


def _rows(data: TrainingData, name: str) -> np.ndarray:
    return np.flatnonzero(data.labels == data.classes.index(name))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _load(path: Path, settings: dict) -> dict:
    if path.is_file():
        results = json.loads(path.read_text())
        if results.get("settings") == settings:
            return results
        raise SystemExit(f"{path} holds a run with other settings: {results.get('settings')}")
    return {"settings": settings, "machine": platform.platform(), "folds": {}}


def _save(path: Path, results: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2))


def _line(key: str, fold: dict) -> str:
    return (
        f"{key:<32} most similar {fold['most_similar']:<16} "
        f"{fold['share_on_most_similar']:>6.1%} of particles there; mean lands on "
        f"{fold['mean_lands_on']:<16} ({fold['minutes']:.1f} min)"
    )


def _summarise(folds: dict, methods: list[str]) -> None:
    for method in methods:
        mine = {k.split("/")[0]: f for k, f in folds.items() if k.endswith(f"/{method}")}
        if not mine:
            continue
        hits = sum(f["mean_lands_on"] == f["most_similar"] for f in mine.values())
        share = np.mean([f["share_on_most_similar"] for f in mine.values()])
        print(
            f"{method}: the class mean lands on the most similar class for {hits} of "
            f"{len(mine)} classes; {share:.1%} of left-out particles on average"
        )
        metrics = set.intersection(*(set(f.get("by_metric", {})) for f in mine.values()))
        for metric in sorted(metrics):
            readings = [f["by_metric"][metric] for f in mine.values()]
            most = sum(
                r["most_land_on"] == f["most_similar"]
                for r, f in zip(readings, mine.values(), strict=True)
            )
            share = np.mean([r["share_on_most_similar"] for r in readings])
            print(
                f"  by {metric}: most particles land on the most similar class for {most} of "
                f"{len(mine)} classes; {share:.1%} of left-out particles on average"
            )


if __name__ == "__main__":
    main()
