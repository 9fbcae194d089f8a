"""The nine built-in classes' affinity as the bundled model sees them, and how saved leave-one-out
results score against it.

The matrix is what the Train dock's "From class centres" computes: each class's mean latent over
its particles (boxes of the leave-one-out training seed, 21) decoded, and the best correlation of
each pair of decoded volumes over rotations and shifts, scaled as ``avae affinity`` scales it. It
is written as an affinity CSV for ``benchmarks/leave_one_out.py --affinity``. Then each results
file given is scored again with "most similar" read from this matrix, beside the maps' matrix
it ran with (the placements themselves are unchanged: no training).

Usage: python benchmarks/centre_affinity.py OUT.csv [--per-class 100] [RESULTS.json ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from leave_one_out import TRAIN_SEED, _simulated

from napari_affinity_vae.io.affinity import save_affinity
from napari_affinity_vae.model import bundled
from napari_affinity_vae.model.inference import decode, encode
from napari_affinity_vae.simulate.affinity import correlation_steps, scale_affinity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("results", type=Path, nargs="*")
    parser.add_argument("--per-class", type=int, default=100)
    args = parser.parse_args()
    data = _simulated(args.out.with_suffix(".boxes"), TRAIN_SEED, args.per_class)
    model, _ = bundled.load_bundled()
    mu = encode(model, data.boxes, error=False)["mu"]
    means = np.stack([mu[data.labels == i].mean(axis=0) for i in range(len(data.classes))])
    volumes = decode(model, means, np.zeros((len(means), 0)))
    steps = correlation_steps(list(volumes))
    while True:  # the steps yield pairs done, then return the correlations
        try:
            next(steps)
        except StopIteration as done:
            raw = done.value
            break
    matrix = pd.DataFrame(scale_affinity(raw), index=data.classes, columns=data.classes)
    save_affinity(matrix, args.out)
    print(matrix.round(2).to_string())
    for path in args.results:
        folds = json.loads(path.read_text())["folds"]
        for name, affinity in (("maps", data.affinity), ("class centres", matrix.to_numpy())):
            for method in sorted({key.split("/")[1] for key in folds}):
                print(
                    f"{path.name} {method}, most similar by the {name}: "
                    + score(folds, method, data.classes, affinity)
                )


def score(folds: dict, method: str, classes: list[str], affinity: np.ndarray) -> str:
    """How many left-out classes' means, and what share of their particles, land on the class
    ``affinity`` calls most similar."""
    hits, shares = 0, []
    for key, fold in folds.items():
        left_out, trained = key.split("/")
        if trained != method:
            continue
        row = affinity[classes.index(left_out)]
        similar = max((c for c in classes if c != left_out), key=lambda c: row[classes.index(c)])
        hits += fold["mean_lands_on"] == similar
        shares.append(fold["shares"][similar])
    return f"{hits} of {len(shares)} classes, {np.mean(shares):.1%} of particles"


if __name__ == "__main__":
    main()
