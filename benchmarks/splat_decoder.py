"""The Gaussian-splat decoder against the convolutional one, same data, same budget: kNN macro-F1
and silhouette of the latent, reconstruction error, the pose's median angle to the true
orientation (up to each class's symmetry, after one best-fitting rotation per class, in the
better hand; beside the same figure for shuffled orientations, chance) and the training time.

Each model trains with the bundled model's settings (25 epochs, batch 64, beta 1e-3 cyclical,
gamma 1, latent 8, seed 0) on the training set T and is scored on the held-out set H, as the
bundled model is (docs/model.md):

    avae simulate T --subtomograms 600 --seed 11
    avae simulate H --subtomograms 200 --seed 12

Variants: ``conv`` (the bundled architecture, one pose number), ``splat`` (256 splats, the pose a
quaternion, no convolutions after them) and ``splat-consistency`` (the same with pose consistency
weight 1: its rotation must turn with a randomly turned copy of each box). The pose of the conv
model is read as the true orientation of the training particle of the same class nearest in pose.
Results are kept in ``--out`` as each variant finishes; a rerun skips those done. Torch runs on
``--threads`` threads (pin the process to as many cores: ``taskset -c 1`` for one).

Usage: python benchmarks/splat_decoder.py --train T --test H [--epochs 25] [--threads 1]
       [--variants conv,splat,splat-consistency] [--out docs/splat_decoder.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.model import bundled
from napari_affinity_vae.model.datasets import load_training_set
from napari_affinity_vae.model.inference import use_threads
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.train import TrainingData, train
from napari_affinity_vae.operations.evaluate import evaluate
from napari_affinity_vae.simulate.affinity import library_affinity
from napari_affinity_vae.simulate.molecules import MOLECULES, symmetry

SPLAT = dataclasses.replace(bundled.ARCHITECTURE, decoder="splat", pose_dims=4)
VARIANTS = {  # name: (architecture, pose consistency weight)
    "conv": (bundled.ARCHITECTURE, 0.0),
    "splat": (SPLAT, 0.0),
    "splat-consistency": (SPLAT, 1.0),
}
SHOWN = ("knn_macro_f1", "silhouette", "reconstruction_error", "pose_angle", "pose_angle_chance")


def run_variant(
    name: str, train_set: TrainingData, test_set: TrainingData, epochs: int, out: Path | None
) -> dict:
    """Train and score one variant; write its checkpoint beside ``out`` when given."""
    architecture, consistency = VARIANTS[name]
    config = dataclasses.replace(
        bundled.CONFIG, epochs=epochs, pose=Schedule("flat", high=consistency)
    )
    tic = time.perf_counter()
    model, card, history = train(train_set, architecture, config, out=out)
    seconds = time.perf_counter() - tic
    groups = {name: symmetry(name) for name in MOLECULES}
    scores = evaluate(model, card, train_set, test_set, False, symmetries=groups)["affinity-vae"]
    return {
        "training_seconds": round(seconds, 1),
        "samples_per_second": float(history["samples_per_second"].median()),
        "architecture": architecture.to_dict(),
        "pose_consistency": consistency,
    } | {k: v for k, v in scores.items() if k != "factor_correlations"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=bundled.CONFIG.epochs)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("docs/splat_decoder.json"))
    parser.add_argument("--checkpoints", type=Path, help="a folder to keep each model in")
    args = parser.parse_args()
    use_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["machine"] = f"{platform.machine()}, {args.threads} torch thread(s)"
    train_set = load_training_set(args.train, fallback_affinity=library_affinity)
    test_set = load_training_set(args.test, fallback_affinity=library_affinity)
    for name in args.variants.split(","):
        if name in results:
            continue
        keep = args.checkpoints / name if args.checkpoints else None
        results[name] = run_variant(name, train_set, test_set, args.epochs, keep)
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(results, indent=2))
    print(f"{'variant':<20}" + "".join(f"{k:>22}" for k in (*SHOWN, "training_seconds")))
    for name in VARIANTS:
        if name in results:
            row = results[name]
            print(f"{name:<20}" + "".join(f"{row[k]:>22.3f}" for k in (*SHOWN, "training_seconds")))


if __name__ == "__main__":
    main()
