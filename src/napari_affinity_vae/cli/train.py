"""``avae train`` and ``avae evaluate``: training, fine-tuning and scoring a model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from napari_affinity_vae.errors import (
    AffinityVAEError,
    UnusableRowsError,
)

if TYPE_CHECKING:
    from napari_affinity_vae.model.checkpoint import ModelCard
    from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.cli.options import (
    batch_size,
    count_type,
    fraction,
    non_negative,
    positive,
    positive_int,
)
from napari_affinity_vae.cli.outputs import add_overwrite, keeping_or_removing, refuse_existing


def add_train(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.model.losses import SCHEDULES
    from napari_affinity_vae.model.network import DECODERS

    tr = commands.add_parser(
        "train",
        help="train an affinity-VAE",
        description="SOURCE is a simulator training set (folder with subtomograms.mrcs), a folder "
        "of <class>_<anything>.mrc files with classes.csv, or a tomogram with --coords. "
        "--preset bundled (bundled-splat) rebuilds the bundled model (the bundled splat "
        "model) from scratch. --init fine-tunes a model "
        "on SOURCE: its architecture and weights, SOURCE's classes and affinity, epochs counted "
        "from 0.",
    )
    tr.add_argument("source", nargs="?", type=Path)
    tr.add_argument("--out", type=Path, required=True, help="checkpoint path (.safetensors/.json)")
    tr.add_argument("--preset", choices=["bundled", "bundled-splat"])
    tr.add_argument("--coords", type=Path, help="coordinate file with a class column")
    tr.add_argument(
        "--tomo-name", help="with --coords: which tomogram's particles, of a file holding several"
    )
    tr.add_argument(
        "--binning",
        type=positive,
        default=1.0,
        help="with --coords: pixel coordinates this many times finer than the tomogram's voxels",
    )
    tr.add_argument(
        "--skip-unusable",
        action="store_true",
        help="with --coords: skip rows with NaN coordinates or outside the tomogram, saying how "
        "many (otherwise they are an error)",
    )
    tr.add_argument(
        "--voxel-size",
        type=positive,
        help="Angstrom, of SOURCE's boxes or tomogram (overrides the headers)",
    )
    tr.add_argument("--affinity", type=Path, help="affinity CSV (default: beside the data)")
    start = tr.add_mutually_exclusive_group()
    start.add_argument("--resume", type=Path, help="a checkpoint to go on training")
    start.add_argument(
        "--init",
        metavar="MODEL",
        help='a model to fine-tune: "bundled", "bundled-splat" or a checkpoint',
    )
    tr.add_argument("--epochs", type=positive_int, default=25)
    tr.add_argument(
        "--batch-size",
        type=batch_size,
        default="auto",
        help='boxes a step; "auto" (the default): 8 to 64, so that an epoch takes at least 8 steps',
    )
    tr.add_argument("--learning-rate", type=positive, default=1e-3)
    tr.add_argument("--beta", type=non_negative, default=1e-3)
    tr.add_argument("--beta-schedule", choices=SCHEDULES, default="cyclical_linear")
    tr.add_argument("--gamma", type=non_negative, default=1.0)
    tr.add_argument("--gamma-schedule", choices=SCHEDULES, default="flat")
    tr.add_argument(
        "--tc", type=non_negative, default=0.0, help="weight of the total correlation (beta-TCVAE)"
    )
    tr.add_argument("--tc-schedule", choices=SCHEDULES, default="flat")
    tr.add_argument(
        "--pose-consistency",
        type=non_negative,
        default=None,
        help="weight of a splat model's pose consistency: its rotation must turn with a "
        "randomly turned copy of each box (default: the --init model's, else 0)",
    )
    tr.add_argument(
        "--box",
        type=positive_int,
        help="voxels: boxes cut with --coords (default: the model's, or 32); a folder's boxes "
        "(all of one size) resampled to it (default: as they are, which a model of --init "
        "must take)",
    )
    shape = tr.add_argument_group(
        "architecture", "of a new model; a run from a checkpoint (--init, --resume) keeps its own"
    )
    shape.add_argument("--depth", type=positive_int, help="default 3")
    shape.add_argument("--capacity", type=positive_int, help="default 8")
    shape.add_argument("--latent-dims", type=positive_int, help="default 8")
    shape.add_argument(
        "--pose-dims",
        type=count_type,
        help="default 1; a splat decoder's 4 (a quaternion; 1 in 2D)",
    )
    shape.add_argument(
        "--decoder",
        choices=DECODERS,
        help="conv (default): transposed convolutions from [latent, pose]; splat: Gaussians "
        "placed by the latent, turned by the pose as a rotation, rendered at any box size",
    )
    shape.add_argument(
        "--splats", type=positive_int, help="Gaussians of a splat decoder (default 256)"
    )
    shape.add_argument(
        "--splat-convs",
        type=count_type,
        help="convolutions refining a splat decoder's box (default 0: the splats alone)",
    )
    tr.add_argument(
        "--validation",
        type=fraction,
        default=0.1,
        help="fraction of each class held out (rounded down: a class of few is trained whole)",
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--checkpoint-every", type=count_type, default=0, metavar="EPOCHS")
    tr.add_argument("--patience", type=count_type, default=0, help="early stop after EPOCHS stale")
    tr.add_argument(
        "--keep",
        choices=["best", "last"],
        help="the epoch whose weights are written: the best validation loss (the default, as "
        "the Train dock keeps; the training loss without --validation), or the last (a "
        "--preset's default, as its model was made)",
    )
    tr.add_argument(
        "--augment", action="store_true", help="turn each box by its own random rotation"
    )
    tr.add_argument(
        "--distributed",
        action="store_true",
        help="one of torchrun's processes: DistributedDataParallel over them (NCCL on GPUs, "
        "gloo on CPUs), --batch-size the global batch; the first process writes",
    )
    add_overwrite(tr, "replace an existing checkpoint (and its .metrics.csv)")
    tr.set_defaults(run=_run_train)


def add_evaluate(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser(
        "evaluate",
        help="score a model's latent space on a labelled held-out set, beside baselines",
        description="Macro-F1 of kNN and logistic classifiers, silhouette and pose R^2 for the "
        "model, PCA of the voxels and a beta-VAE. When the held-out set is a simulator set "
        "(subtomograms.csv), also how disentangled each latent is: MIG, the mutual information "
        "gap over the factors class, orientation (the nine rotation-matrix entries R_ij) and "
        "shift_z/y/x, and the factor each latent dimension tracks best (|Spearman|, or eta "
        "for the class); --out holds every dimension's correlation with every factor.",
    )
    ev.add_argument(
        "checkpoint", type=Path, nargs="?", help='default: the bundled model; or "bundled-splat"'
    )
    ev.add_argument("--train", type=Path, required=True, help="training set the classifiers fit")
    ev.add_argument("--test", type=Path, required=True, help="held-out labelled set")
    ev.add_argument(
        "--voxel-size", type=positive, help="Angstrom, of both sets' boxes (overrides headers)"
    )
    ev.add_argument("--no-baselines", action="store_true")
    ev.add_argument("--baseline-epochs", type=positive_int, help="default: the model's own epochs")
    ev.add_argument("--out", type=Path, help="write the figures as JSON")
    ev.add_argument(
        "--record", action="store_true", help="store the figures in the checkpoint's model card"
    )
    add_overwrite(ev)
    ev.set_defaults(run=_run_evaluate)


def _run_train(args: argparse.Namespace) -> int:
    if not args.distributed:
        return _train(args)
    from napari_affinity_vae.model import distributed

    distributed.start()
    try:
        return _train(args)
    finally:
        distributed.stop()


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.model import distributed
    from napari_affinity_vae.model.bundled import checkpoint_path
    from napari_affinity_vae.model.checkpoint import (
        CHECKPOINT_SUFFIXES,
        checkpoint_file,
        read_card,
    )
    from napari_affinity_vae.model.datasets import PickChoice, load_training_set
    from napari_affinity_vae.model.losses import Schedule
    from napari_affinity_vae.model.network import Architecture
    from napari_affinity_vae.model.splats import ROTATION_DIMS, turns_pose
    from napari_affinity_vae.model.train import TrainingConfig, train
    from napari_affinity_vae.simulate.affinity import library_affinity

    out = Path(args.out)
    refuse_existing(args, *(checkpoint_file(out, s) for s in CHECKPOINT_SUFFIXES))
    start = args.init or args.resume
    options = ("depth", "capacity", "latent_dims", "pose_dims", "decoder", "splats", "splat_convs")
    shape = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
    if start is not None and shape:
        given = ", ".join("--" + k.replace("_", "-") for k in shape)
        raise AffinityVAEError(f"a run from {start} keeps its architecture: drop {given}")
    if args.init is not None and args.preset:
        raise AffinityVAEError(f"--preset {args.preset} trains from scratch: drop --init")
    if args.box is not None and start is None and not args.preset:
        step = 2 ** shape.get("depth", Architecture.depth)
        if args.box % step:
            allowed = ", ".join(str(step * k) for k in range(1, 5))
            raise AffinityVAEError(
                f"--box {args.box} is not a multiple of {step} (2 ** depth): give {allowed}, ..."
            )
    command = args.command_line
    if args.preset:
        from napari_affinity_vae.model import bundled
        from napari_affinity_vae.operations.training import bundled_training_set

        data = bundled_training_set(tqdm)
        _, architecture, config = bundled.PRESETS[args.preset]
        command = f"avae train --preset {args.preset}"
    else:
        if args.source is None:
            raise AffinityVAEError("give a SOURCE or --preset bundled")
        begun = read_card(checkpoint_file(checkpoint_path(start), ".json")) if start else None
        model_box = begun.architecture.box if begun else None
        # cut from a tomogram at the model's size (else 32); a folder resampled only if asked
        box = args.box or (model_box if args.coords else None)
        picks = PickChoice(args.tomo_name, args.binning, args.skip_unusable)
        if args.coords is None and picks != PickChoice():
            raise AffinityVAEError("--tomo-name, --binning and --skip-unusable go with --coords")
        try:
            data = load_training_set(
                args.source,
                args.coords,
                args.affinity,
                box,
                library_affinity,
                args.voxel_size,
                picks,
            )
        except UnusableRowsError as err:
            raise UnusableRowsError(
                err.path, f"{err.problem}; --skip-unusable skips them"
            ) from None
        ndim = data.boxes.ndim - 1
        if shape.get("decoder") == "splat":
            shape.setdefault("pose_dims", ROTATION_DIMS[ndim])
        try:
            architecture = Architecture(box=data.boxes.shape[-1], ndim=ndim, **shape)
        except ValueError as err:  # the boxes' size against the depth, a splat's pose
            raise AffinityVAEError(f"{args.source}: {err}") from None
        config = TrainingConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            beta=Schedule(args.beta_schedule, high=args.beta),
            gamma=Schedule(args.gamma_schedule, high=args.gamma),
            tc=Schedule(args.tc_schedule, high=args.tc),
            pose=_pose_schedule(args.pose_consistency, begun),
            validation_fraction=args.validation,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            patience=args.patience,
            augment=args.augment,
        )
        if args.pose_consistency and not turns_pose(begun.architecture if begun else architecture):
            model = f"{start} is not one" if start else "give --decoder splat"
            raise AffinityVAEError(
                f"--pose-consistency weighs the pose of a splat model turning in 3D: {model}"
            )
    first = distributed.world()[0] == 0
    if first:
        print(f"training on {data.description}", file=sys.stderr)
    outputs = [checkpoint_file(args.out, s) for s in CHECKPOINT_SUFFIXES] if first else []
    with keeping_or_removing(outputs, ".json"):  # the first process writes them
        _, card, history = train(
            data,
            architecture,
            config,
            args.out,
            args.resume,
            tqdm,
            command,
            args.init,
            keep_best=(args.keep or ("last" if args.preset else "best")) == "best",
        )
    if not first:
        return 0
    kept = history.iloc[card.training.get("best_epoch", len(history)) - 1]
    loss = "val_loss" if "val_loss" in kept else "loss"
    print(
        f"{checkpoint_file(args.out, '.safetensors')}: {card.describe()}; "
        f"epoch {int(kept['epoch'])} of {len(history)}, {loss.replace('_', ' ')} {kept[loss]:.4f}"
    )
    return 0


def _pose_schedule(weight: float | None, begun: ModelCard | None) -> Schedule:
    """The pose consistency to train with: ``weight`` given, else the one the ``--init``
    model's card records (a splat model's pose stays tied to orientation, as in the Train
    dock), else none."""
    from napari_affinity_vae.model.losses import Schedule
    from napari_affinity_vae.model.train import TrainingConfig

    if weight is None and begun is not None:
        return TrainingConfig.from_dict(begun.training.get("config", {})).pose
    return Schedule("flat", high=weight or 0.0)


def _run_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.io.atomic import atomic_path
    from napari_affinity_vae.model.bundled import checkpoint_path
    from napari_affinity_vae.model.checkpoint import checkpoint_file, load_checkpoint
    from napari_affinity_vae.model.datasets import load_factors, load_training_set
    from napari_affinity_vae.operations.evaluate import evaluate
    from napari_affinity_vae.simulate.affinity import library_affinity
    from napari_affinity_vae.simulate.molecules import MOLECULES, symmetry
    from napari_affinity_vae.text import strict_json

    refuse_existing(args, args.out)
    weights = checkpoint_path(args.checkpoint or "bundled")
    model, card = load_checkpoint(weights)
    results = evaluate(
        model,
        card,
        load_training_set(
            args.train, fallback_affinity=library_affinity, voxel_size=args.voxel_size
        ),
        load_training_set(
            args.test, fallback_affinity=library_affinity, voxel_size=args.voxel_size
        ),
        baselines=not args.no_baselines,
        baseline_epochs=args.baseline_epochs,
        progress=tqdm,
        factors=load_factors(args.test),
        symmetries={name: symmetry(name) for name in MOLECULES},
    )
    keys = ("knn_macro_f1", "logistic_macro_f1", "silhouette", "pose_r2", "pose_angle", "mig")
    print(f"{'method':<14}" + "".join(f"{k:>19}" for k in keys))
    for method, scores in results.items():
        print(f"{method:<14}" + "".join(f"{scores.get(k, float('nan')):>19.3f}" for k in keys))
        for name, nearest in scores.get("unseen_nearest", {}).items():
            print(
                f"  unseen class {name} lands nearest {nearest['nearest_in_latent']} "
                f"(most similar by affinity: {nearest['most_similar_by_affinity']})"
            )
    tracked = {
        m: s["factor_correlations"] for m, s in results.items() if "factor_correlations" in s
    }
    if tracked:
        print("\nthe factor each latent dimension tracks best (|Spearman|, eta for the class)")
        print(f"{'dimension':<14}" + "".join(f"{m:>19}" for m in tracked))
        for dimension in next(iter(tracked.values())):
            best = [max(t[dimension].items(), key=lambda kv: kv[1]) for t in tracked.values()]
            print(f"{dimension:<14}" + "".join(f"{f'{k} {v:.2f}':>19}" for k, v in best))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(strict_json(results))
    if args.record:
        card.metrics = {"evaluation": results, "train": str(args.train), "test": str(args.test)}
        card_path = checkpoint_file(weights, ".json")
        with atomic_path(card_path) as tmp:
            tmp.write_text(card.to_json())
    return 0
