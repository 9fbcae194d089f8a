"""The ``avae`` command line: the same pipeline as the napari widgets, without a screen."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from napari_affinity_vae import __version__
from napari_affinity_vae.errors import (
    AffinityVAEError,
    InputFileError,
    OutputExistsError,
    ParticleFileError,
    UnusableRowsError,
)

if TYPE_CHECKING:
    import pandas as pd

    from napari_affinity_vae.io.tomogram import Tomogram
    from napari_affinity_vae.model.checkpoint import ModelCard
    from napari_affinity_vae.model.losses import Schedule
    from napari_affinity_vae.particles.templates import MatchResult
    from napari_affinity_vae.progress import Progress
    from napari_affinity_vae.simulate.tomogram import Simulation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avae",
        description="Explore cryo-ET tomograms through the latent space of an affinity-VAE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(commands)
    _add_simulate(commands)
    _add_affinity(commands)
    _add_train(commands)
    _add_evaluate(commands)
    _add_pick(commands)
    _add_embed(commands)
    _add_project(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="napari with every dock widget: the sample tomogram picked, embedded, a cluster "
        "selected and decoded",
    )
    demo.add_argument("tomogram", nargs="?", type=Path, help="an MRC file instead of the sample")
    demo.add_argument("--voxel-size", type=float, help="voxel size in Angstrom (overrides header)")
    demo.add_argument(
        "--screenshot", type=Path, metavar="PATH", help="write a PNG of the window and exit"
    )
    demo.add_argument("--seed", type=int, help="simulate the sample with this seed")
    demo.add_argument("--particles", type=int, help="simulate the sample with this many particles")
    demo.set_defaults(run=_run_demo)


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.simulate.molecules import MOLECULES
    from napari_affinity_vae.simulate.outputs import TOMOGRAM_FORMATS

    sim = commands.add_parser(
        "simulate",
        help="simulate a tomogram with ground truth (or a subtomogram training set)",
        description="Writes OUTDIR/tomogram.mrc, particles.star (ground truth), references/*.mrc "
        "and affinity.csv; with --subtomograms, OUTDIR/subtomograms.mrcs and .csv (and "
        "affinity.csv) instead of the tomogram, particles and references; with --tomograms N, "
        "a RELION 5 project of N tomograms (tomograms/TS_01.mrc, ..., tomograms.star, "
        "particles.star with the ground truth, optimisation_set.star, affinity.csv), "
        "--particles per tomogram, seeds SEED, SEED + 1, ... Molecules of your own "
        "(--molecule NAME=PATH) are simulated beside the built-in --classes; --classes with no "
        "names leaves the built-in ones out.",
    )
    sim.add_argument("outdir", type=Path)
    sim.add_argument(
        "--shape", type=_positive_int, nargs=3, metavar=("Z", "Y", "X"), default=(200, 400, 400)
    )
    sim.add_argument("--particles", type=_count, default=300)
    noise = sim.add_mutually_exclusive_group()
    noise.add_argument("--snr", type=_positive, default=0.1, help="per tilt image (default 0.1)")
    noise.add_argument("--dose", type=_positive, help="total electrons per A^2 (Poisson noise)")
    noise.add_argument("--no-noise", action="store_true")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--voxel-size", type=_positive, default=10.0, help="Angstrom (default 10)")
    sim.add_argument(
        "--classes",
        nargs="*",
        choices=list(MOLECULES),
        default=list(MOLECULES),
        help="built-in classes (default all)",
    )
    sim.add_argument(
        "--molecule",
        action="append",
        type=_molecule_argument,
        default=[],
        metavar="NAME=PATH",
        help="a class of your own, named NAME: an MRC map (.map.gz too; scaled to protein "
        "fractions) or a PDB / mmCIF model; repeatable",
    )
    sim.add_argument("--vesicles", type=_count, default=0)
    sim.add_argument("--fiducials", type=_count, default=0, help="10 nm gold beads")
    sim.add_argument("--defocus", type=_finite, default=3.0, help="micrometres underfocus")
    sim.add_argument(
        "--tilt-range",
        type=_finite,
        nargs=3,
        metavar=("MIN", "MAX", "STEP"),
        default=(-60, 60, 3),
        action=_range(within=TILT_LIMITS, step=True),
    )
    sim.add_argument("--phase-flip", action="store_true", help="correct the CTF by phase flipping")
    sim.add_argument("--invert", action="store_true", help="protein white instead of dark")
    sim.add_argument(
        "--subtomograms", type=_positive_int, metavar="PER_CLASS", help="training-set mode"
    )
    sim.add_argument(
        "--off-centre",
        type=_non_negative,
        default=0.0,
        metavar="VOXELS",
        help="training boxes off their particles by this standard deviation, like picks",
    )
    sim.add_argument(
        "--at-picks",
        action="store_true",
        help="also a box centred where the built-in picker finds each particle",
    )
    sim.add_argument(
        "--box", type=_positive_int, help=f"subtomogram box in voxels (default {SIMULATED_BOX})"
    )
    sim.add_argument(
        "--tomograms", type=_positive_int, metavar="N", help="a RELION 5 project of N tomograms"
    )
    sim.add_argument(
        "--format",
        choices=[*TOMOGRAM_FORMATS, "copick"],
        default="mrc",
        help="tomograms as MRC files or multiscale OME-Zarr folders (default mrc); copick: a "
        "copick project of --tomograms runs (default 1), the ground truth as picks",
    )
    _add_overwrite(sim, "replace an earlier simulation in OUTDIR (its other files stay)")
    sim.set_defaults(run=_run_simulate)


def _add_affinity(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.simulate.affinity import SCALING

    aff = commands.add_parser(
        "affinity",
        help="class affinity matrix from reference maps (best NCC over rotations)",
        description="Maps are MRC files, gzip or bzip2 compressed too (emd_3197.map.gz), or "
        "PDB/mmCIF models; a class is named by its file's name without suffixes (emd_3197). "
        "Without MAPS, the built-in molecule classes. Each pair's best normalised "
        f"cross-correlation c over rotations and shifts gives its affinity {SCALING}, clipped "
        "to [-1, 1]: identical maps 1, c = 0.5 gives 0, whatever other maps are given.",
    )
    aff.add_argument("maps", nargs="*", type=Path)
    aff.add_argument("--out", type=Path, required=True, help=f"affinity CSV to write ({SCALING})")
    aff.add_argument("--raw", type=Path, help="also write the best correlations c")
    aff.add_argument(
        "--voxel-size", type=_positive, help="Angstrom (default: the first map's, or 10)"
    )
    _add_overwrite(aff)
    aff.set_defaults(run=_run_affinity)


def _add_train(commands: argparse._SubParsersAction) -> None:
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
        type=_positive,
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
        type=_positive,
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
    tr.add_argument("--epochs", type=_positive_int, default=25)
    tr.add_argument(
        "--batch-size",
        type=_batch_size,
        default="auto",
        help='boxes a step; "auto" (the default): 8 to 64, so that an epoch takes at least 8 steps',
    )
    tr.add_argument("--learning-rate", type=_positive, default=1e-3)
    tr.add_argument("--beta", type=_non_negative, default=1e-3)
    tr.add_argument("--beta-schedule", choices=SCHEDULES, default="cyclical_linear")
    tr.add_argument("--gamma", type=_non_negative, default=1.0)
    tr.add_argument("--gamma-schedule", choices=SCHEDULES, default="flat")
    tr.add_argument(
        "--tc", type=_non_negative, default=0.0, help="weight of the total correlation (beta-TCVAE)"
    )
    tr.add_argument("--tc-schedule", choices=SCHEDULES, default="flat")
    tr.add_argument(
        "--pose-consistency",
        type=_non_negative,
        default=None,
        help="weight of a splat model's pose consistency: its rotation must turn with a "
        "randomly turned copy of each box (default: the --init model's, else 0)",
    )
    tr.add_argument(
        "--box",
        type=_positive_int,
        help="voxels: boxes cut with --coords (default: the model's, or 32); a folder's boxes "
        "(all of one size) resampled to it (default: as they are, which a model of --init "
        "must take)",
    )
    shape = tr.add_argument_group(
        "architecture", "of a new model; a run from a checkpoint (--init, --resume) keeps its own"
    )
    shape.add_argument("--depth", type=_positive_int, help="default 3")
    shape.add_argument("--capacity", type=_positive_int, help="default 8")
    shape.add_argument("--latent-dims", type=_positive_int, help="default 8")
    shape.add_argument(
        "--pose-dims", type=_count, help="default 1; a splat decoder's 4 (a quaternion; 1 in 2D)"
    )
    shape.add_argument(
        "--decoder",
        choices=DECODERS,
        help="conv (default): transposed convolutions from [latent, pose]; splat: Gaussians "
        "placed by the latent, turned by the pose as a rotation, rendered at any box size",
    )
    shape.add_argument(
        "--splats", type=_positive_int, help="Gaussians of a splat decoder (default 256)"
    )
    shape.add_argument(
        "--splat-convs",
        type=_count,
        help="convolutions refining a splat decoder's box (default 0: the splats alone)",
    )
    tr.add_argument(
        "--validation",
        type=_fraction,
        default=0.1,
        help="fraction of each class held out (rounded down: a class of few is trained whole)",
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--checkpoint-every", type=_count, default=0, metavar="EPOCHS")
    tr.add_argument("--patience", type=_count, default=0, help="early stop after EPOCHS stale")
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
    _add_overwrite(tr, "replace an existing checkpoint (and its .metrics.csv)")
    tr.set_defaults(run=_run_train)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
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
        "--voxel-size", type=_positive, help="Angstrom, of both sets' boxes (overrides headers)"
    )
    ev.add_argument("--no-baselines", action="store_true")
    ev.add_argument("--baseline-epochs", type=_positive_int, help="default: the model's own epochs")
    ev.add_argument("--out", type=Path, help="write the figures as JSON")
    ev.add_argument(
        "--record", action="store_true", help="store the figures in the checkpoint's model card"
    )
    _add_overwrite(ev)
    ev.set_defaults(run=_run_evaluate)


def _add_pick(commands: argparse._SubParsersAction) -> None:
    pk = commands.add_parser(
        "pick",
        help="find particles of a diameter range in a tomogram, or by template matching",
        description="With --diameter the blob picker; with --templates, template matching: "
        "the normalised cross-correlation of each reference over a grid of rotations, the "
        "missing wedge of --tilt-range applied to the templates; picks carry the template's "
        "name and the best rotation as RELION angles.",
    )
    pk.add_argument("tomogram", type=Path)
    pk.add_argument(
        "--diameter",
        type=_positive,
        nargs=2,
        metavar=("MIN", "MAX"),
        action=_range(equal=True),
        help="particle diameters in Angstrom (the blob picker)",
    )
    pk.add_argument("--out", type=Path, required=True, help=".star, .csv, .tbl, .coords or .mod")
    pk.add_argument("--voxel-size", type=_positive, help="Angstrom (overrides the header)")
    pk.add_argument(
        "--threshold", type=_finite, help="score threshold in noise deviations (default: automatic)"
    )
    pk.add_argument("--max-count", type=_positive_int)
    pk.add_argument(
        "--margin", type=_non_negative, help="Angstrom from the faces (default: MIN / 2)"
    )
    pk.add_argument("--inverted", action="store_true", help="protein is white")
    tm = pk.add_argument_group("template matching")
    tm.add_argument(
        "--templates", type=Path, nargs="+", metavar="MAP", help="reference maps or atomic models"
    )
    tm.add_argument("--angular-step", type=_angular_step, default=30.0, help="degrees (default 30)")
    tm.add_argument(
        "--no-refine",
        action="store_true",
        help="keep the search's centres and grid angles (default: refine each pick at the "
        "tomogram's voxel size, to a fraction of the step)",
    )
    tm.add_argument(
        "--symmetry",
        nargs="+",
        metavar="GROUP",
        help="point group of each template: C7, D7 (axis z), T, O, I (default C1)",
    )
    tm.add_argument(
        "--tilt-range",
        type=_finite,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(-60.0, 60.0),
        action=_range(within=TILT_LIMITS),
        help="degrees, about y, for the missing wedge (default -60 60)",
    )
    tm.add_argument("--no-wedge", action="store_true", help="no missing wedge (subtomogram sets)")
    tm.add_argument("--lowpass", type=_positive, help="Angstrom (default three search voxels)")
    tm.add_argument(
        "--binning",
        type=_positive_int,
        help="search binned (default: automatic on the CPU, 1 on a GPU)",
    )
    tm.add_argument(
        "--false-alarms",
        type=_positive,
        default=1.0,
        help="noise peaks expected above the automatic threshold over the search (default 1)",
    )
    tm.add_argument(
        "--score-map", type=_mrc_output, help="also write the best score at every voxel"
    )
    _add_overwrite(pk)
    searched = {a.dest: (a.option_strings[0], a.default) for a in tm._group_actions}
    searched.pop("templates")
    pk.set_defaults(run=_run_pick, search_options=searched)


PARQUET_ABOVE = 100_000  # particles: a Parquet twin of the output beside a text one
SIMULATED_BOX = 32  # voxels: avae simulate --subtomograms' boxes unless --box says
PARTLY_DONE = 3  # exit status: a project written without the tomograms that failed


def _add_embed(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.analysis.clustering import CLUSTERINGS
    from napari_affinity_vae.operations import defaults

    em = commands.add_parser(
        "embed",
        help="latent vectors, 2D embedding and clusters for the particles of a tomogram or a "
        "project",
        description="Writes the particles with latent_*, pose_*, crosses_edge (and "
        "reconstruction_error with --error), embedding_x and embedding_y (UMAP unless --pca or "
        "--tsne; above 50,000 particles UMAP or t-SNE of a sample, the rest placed among their "
        "nearest sampled neighbours), cluster "
        "(k-means into 10 unless told otherwise, as in the Embed widget) and cluster_centre. "
        "A coordinate file without particles is an error: there is "
        "nothing to embed. More clusters than particles gives one cluster per particle, said on "
        "stderr; HDBSCAN leaves fewer than 5 particles as noise (-1), and UMAP and t-SNE lay out "
        "fewer than 5 by PCA, with a warning. A tomogram whose voxel size is more than 4 times "
        "finer or coarser than the model's is refused: check its header or give --voxel-size. "
        f"A project some of whose tomograms could not be embedded is still written, each "
        f"failure said on stderr, and the exit status is {PARTLY_DONE}.",
    )
    em.add_argument(
        "sources",
        type=Path,
        nargs="+",
        metavar="SOURCE",
        help="a tomogram and its coordinate file (any format), or a project as `avae project` "
        "takes it",
    )
    em.add_argument(
        "--out",
        type=Path,
        required=True,
        help=".star or .csv (a tomogram's also .tbl, .coords, .mod; a project's also .parquet)",
    )
    em.add_argument(
        "--model", type=Path, help='a checkpoint or "bundled-splat" (default: the bundled model)'
    )
    em.add_argument("--voxel-size", type=float, help="Angstrom (overrides the header)")
    em.add_argument(
        "--tomo-name",
        help="which tomogram's particles, in a STAR file, CSV or Dynamo table (tomogram number) "
        "holding several",
    )
    em.add_argument("--inverted", action="store_true", help="protein is white")
    em.add_argument(
        "--skip-unusable",
        action="store_true",
        help="skip rows with NaN coordinates or outside their tomogram, saying how many "
        "(otherwise they are an error: a folder's coordinate file stops the project; rows of a "
        "project's STAR file keep their tomogram from being embedded)",
    )
    em.add_argument(
        "--error",
        action="store_true",
        help="also each box's reconstruction error (runs the decoder too: about 4x slower)",
    )
    view = em.add_mutually_exclusive_group()
    for method, name in (("pca", "PCA (instant)"), ("umap", "UMAP"), ("tsne", "t-SNE")):
        default = " (default)" if method == defaults.PROJECTION else ""
        view.add_argument(
            f"--{method}",
            dest="projection",
            action="store_const",
            const=method,
            help=f"2D embedding by {name}{default}",
        )
    em.set_defaults(projection=defaults.PROJECTION)
    em.add_argument(
        "--clusters",
        type=_positive_int,
        metavar="K",
        default=defaults.CLUSTERS,
        help=f"cluster into K groups (default {defaults.CLUSTERS})",
    )
    em.add_argument("--clustering", choices=CLUSTERINGS, default=defaults.CLUSTERING)
    em.add_argument("--seed", type=int, default=defaults.SEED)
    batch = em.add_argument_group("projects of many tomograms")
    batch.add_argument(
        "--workers", type=int, metavar="N", help="run on a local Dask cluster of N processes"
    )
    batch.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster (its workers must see the files at the same paths)",
    )
    batch.add_argument(
        "--resume",
        action="store_true",
        help="keep finished tomograms in OUT.parts/ and skip those kept by an earlier run",
    )
    em.add_argument(
        "--binning",
        type=_positive,
        default=1.0,
        help="as for `avae project`; a tomogram's coordinate file is written back in its pixels",
    )
    em.add_argument(
        "--map",
        metavar="KIND",
        help="cut boxes from this map of every tomogram: RELION 5's denoised, reconstructed, "
        "half1 or half2, a copick tomogram type (default: each tomogram's first, denoised where "
        "there is one; `avae project` lists them)",
    )
    batch.add_argument(
        "--parquet",
        action="store_true",
        help=f"also write OUT with the suffix .parquet (always above {PARQUET_ABOVE:,} particles)",
    )
    _add_pick_set_options(em)
    _add_overwrite(em)
    em.set_defaults(run=_run_embed)


def _add_project(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.io.projects.sources import SOURCES

    pr = commands.add_parser(
        "project",
        help="list a project's tomograms, voxel sizes, particles per tomogram, what is missing",
        description=f"SOURCE is {SOURCES}. STAR files are told apart by their content.",
    )
    pr.add_argument("sources", type=Path, nargs="+", metavar="SOURCE")
    pr.add_argument(
        "--binning",
        type=_positive,
        default=1.0,
        help="pixel coordinates (RELION 4, Dynamo, CSV, .coords, .mod) are in pixels this many "
        "times finer than the tomograms' voxels (RELION 5's centred Angstrom need none, nor a STAR "
        "file whose data_optics gives rlnTomoTiltSeriesPixelSize)",
    )
    pr.add_argument(
        "--voxel-size",
        type=float,
        help="Angstrom, for tomograms whose headers have none or a wrong one (RELION 5's STAR "
        "files give theirs)",
    )
    pr.add_argument(
        "--tomo-name",
        help="for a tomogram with a STAR file, Dynamo table or CSV holding several tomograms: "
        "which tomogram's particles",
    )
    pr.add_argument(
        "--skip-unusable",
        action="store_true",
        help="list it as avae embed --skip-unusable embeds it: skip rows with NaN coordinates "
        "or outside their tomogram, saying how many (otherwise they are an error)",
    )
    _add_pick_set_options(pr)
    pr.set_defaults(run=_run_project)


def _add_pick_set_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group(
        "copick projects and CryoET Data Portal downloads (default: every pick set)"
    )
    group.add_argument("--object", help="the picks of this object only")
    group.add_argument("--user", help="copick: the picks of this user only")
    group.add_argument("--session", help="copick: the picks of this session only")
    group.add_argument(
        "--voxel-spacing", type=float, metavar="A", help="the tomograms at this voxel spacing"
    )
    group.add_argument(
        "--tomo-type", help="the tomograms of this type (default wbp, else the first by name)"
    )


def _number(convert: Callable[[str], float], wanted: str, ok: Callable[[float], bool]):
    """An argparse ``type`` reading a number with ``convert`` that ``ok`` accepts; otherwise
    argparse's one-line error: ``argument --option: must be WANTED, got TEXT``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = wanted  # what argparse would name the type
    return parse


_positive = _number(float, "a positive number", lambda v: math.isfinite(v) and v > 0)
_non_negative = _number(float, "a number of at least 0", lambda v: math.isfinite(v) and v >= 0)
_finite = _number(float, "a finite number", math.isfinite)
_positive_int = _number(int, "a whole number of at least 1", lambda v: v >= 1)
_count = _number(int, "a whole number of at least 0", lambda v: v >= 0)
_fraction = _number(float, "a fraction of at least 0 and below 1", lambda v: 0 <= v < 1)
_angular_step = _number(float, "degrees above 0 and at most 180", lambda v: 0 < v <= 180)
_batch_count = _number(int, '"auto" or a whole number of at least 1', lambda v: v >= 1)


def _batch_size(text: str) -> int:
    """``--batch-size``: "auto" (0, which training sizes for the set) or a whole number."""
    return 0 if text == "auto" else _batch_count(text)


def _range(
    *, equal: bool = False, within: tuple[float, float] | None = None, step: bool = False
) -> type[argparse.Action]:
    """An argparse action for MIN MAX (STEP) that refuses MIN above MAX (or equal to it unless
    ``equal``), values outside ``within`` and a STEP that is not positive."""

    class Range(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            low, high = values[0], values[1]
            if within is not None and not all(within[0] <= v <= within[1] for v in (low, high)):
                lowest, highest = within
                problem = f"MIN and MAX must lie from {lowest:g} to {highest:g}"
            elif not (low <= high if equal else low < high):
                problem = f"MIN must be {'at most' if equal else 'below'} MAX"
            elif step and not values[2] > 0:
                problem = "STEP must be above 0"
            else:
                setattr(namespace, self.dest, values)
                return
            given = " ".join(f"{v:g}" for v in values)
            raise argparse.ArgumentError(self, f"{problem}, got {given}")

    return Range


TILT_LIMITS = (-90.0, 90.0)  # degrees: a tilt series about y
SIMULATION_RECORD = ".avae-simulation"  # in a simulated folder: what it wrote there


def _mrc_output(text: str) -> Path:
    """An output path for an MRC file: its suffix must say so."""
    path = Path(text)
    if path.suffix.lower() != ".mrc":
        raise argparse.ArgumentTypeError(f"an MRC file is written: give a .mrc path, got {text}")
    return path


def _pick_set_choice(args: argparse.Namespace) -> object:
    from napari_affinity_vae.io.projects.copick import PickSetChoice

    return PickSetChoice(args.object, args.user, args.session, args.voxel_spacing, args.tomo_type)


def _add_overwrite(
    command: argparse.ArgumentParser, text: str = "replace an existing --out"
) -> None:
    command.add_argument("--overwrite", action="store_true", help=text)


def _refuse_existing(args: argparse.Namespace, *paths: Path | None) -> None:
    """Outputs are never replaced unless ``--overwrite`` says so, each must be writable, and
    no file may be two of them (the last written would replace the first): refused before any
    work, not after it."""
    from napari_affinity_vae.io.atomic import check_writable

    given = [p for p in paths if p is not None]
    resolved = [p.resolve() for p in given]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise AffinityVAEError(f"{given[i]} is given as two outputs: give each its own file")
    for path in given:
        if path.exists() and not path.is_dir() and not args.overwrite:
            raise OutputExistsError(path)
        check_writable(path)


def reference(width: int = 100) -> str:
    """The help of ``avae`` and of each command as Markdown (docs/cli.md is made from it)."""
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, {"COLUMNS": str(width)}):
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = [
            "# Command-line reference\n",
            "Generated from the program by `python scripts/make_cli_docs.py`; "
            "`avae COMMAND --help` prints the same.\n",
            f"```text\n{parser.format_help()}```\n",
        ]
        for name, sub in commands.choices.items():
            parts.append(f"## avae {name}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports torch: seconds, which Ctrl-C may cut short
    except KeyboardInterrupt:
        print("avae: cancelled", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    args.command_line = "avae " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, args.command)
            return args.run(args)
    except AffinityVAEError as err:
        print(f"avae {args.command}: error: {err}", file=sys.stderr)
        for note in getattr(err, "__notes__", ()):
            print(f"avae {args.command}: {note}", file=sys.stderr)
        return 2
    except Cancelled as cancelled:
        print(f"avae {args.command}: cancelled; {cancelled}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"avae {args.command}: cancelled; no partial files were left", file=sys.stderr)
        return 130


class Cancelled(KeyboardInterrupt):
    """A run cancelled with Ctrl-C that keeps what it wrote so far, saying what."""


@contextlib.contextmanager
def _keeping_or_removing(outputs: list[Path], resumable: str):
    """On Ctrl-C or an error: the ``outputs`` a run has written are kept where a checkpoint
    among them (the file ending ``resumable``) lets it go on; otherwise those it made are
    removed. Either is said."""
    before = {p: p.stat().st_mtime_ns for p in outputs if p.exists()}
    try:
        yield
    except (KeyboardInterrupt, AffinityVAEError) as stopped:
        written = [p for p in outputs if p.exists() and before.get(p) != p.stat().st_mtime_ns]
        checkpoint = next((p for p in written if p.name.endswith(resumable)), None)
        if checkpoint is not None:
            kept = ", ".join(p.name for p in written)
            note = f"kept {kept} (--resume {checkpoint} goes on from there)"
        else:
            for path in (p for p in written if p not in before):
                path.unlink(missing_ok=True)
            rewritten = [p.name for p in written if p in before]
            note = f"{', '.join(rewritten)} rewritten in part" if rewritten else None
        if note is None:
            raise
        if isinstance(stopped, KeyboardInterrupt):
            raise Cancelled(note) from None
        stopped.add_note(note)
        raise


def _show_warning(command: str, message: Warning | str, *_args: object, **_kwargs: object) -> None:
    """A warning as one line on stderr, like the errors: ``avae CMD: warning: ...``."""
    print(f"avae {command}: warning: {message}", file=sys.stderr)


def _run_demo(args: argparse.Namespace) -> int:
    from napari_affinity_vae.demo import run_demo

    return run_demo(
        args.tomogram,
        voxel_size=args.voxel_size,
        screenshot=args.screenshot,
        seed=args.seed,
        particles=args.particles,
    )


def _run_simulate(args: argparse.Namespace) -> int:
    from napari_affinity_vae.simulate.tiltseries import Microscope
    from napari_affinity_vae.simulate.tomogram import Simulation

    _check_simulate_options(args)
    found = next(p for p in (args.outdir, *args.outdir.absolute().parents) if p.exists())
    if not found.is_dir():  # the folder, or one it would be made in
        raise AffinityVAEError(f"{args.outdir}: {found} is a file, not a folder")
    if not args.overwrite and found == args.outdir and any(args.outdir.iterdir()):
        raise OutputExistsError(args.outdir)
    molecules = _molecules(args.molecule)
    if not args.classes and not molecules:
        raise AffinityVAEError("nothing to simulate: name --classes or give a --molecule")
    low, high, step = args.tilt_range
    settings = Simulation(
        shape=tuple(args.shape),
        particles=args.particles,
        classes=(*args.classes, *molecules),
        voxel_size=args.voxel_size,
        snr=None if (args.no_noise or args.dose is not None) else args.snr,
        dose=args.dose,
        seed=args.seed,
        vesicles=args.vesicles,
        fiducials=args.fiducials,
        invert=args.invert,
        microscope=Microscope(
            defocus_um=args.defocus,
            tilt_min=low,
            tilt_max=high,
            tilt_step=step,
            phase_flip=args.phase_flip,
        ),
        name=args.outdir.name,
        molecules=molecules,
    )
    with _emptied_on_failure(args.outdir):
        if args.overwrite:
            _clear_simulation(args.outdir)
        paths = list(_simulated(args, settings))
        _record_simulation(args.outdir, paths)
    for path in paths:
        print(path)
    return 0


def _clear_simulation(folder: Path) -> None:
    """Remove what an earlier ``avae simulate`` recorded writing in ``folder`` (and nothing
    else), so that none of its files stays beside the new ones: an old tomogram.mrc beside a
    new tomogram.zarr and particles.star would be embedded with particles not its own."""
    record = folder / SIMULATION_RECORD
    if not record.is_file():
        return
    for name in record.read_text().splitlines():
        entry = folder / name
        if not name or Path(name).name != name or name in (".", ".."):
            continue  # a name, never a path out of the folder
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()
    record.unlink()


def _record_simulation(folder: Path, paths: list[Path]) -> None:
    """Note in ``folder`` what this simulation wrote there, for --overwrite to replace."""
    root = folder.resolve()
    names = set()
    for path in paths:
        with contextlib.suppress(ValueError):  # written elsewhere: not the folder's
            names.add(Path(path).resolve().relative_to(root).parts[0])
    from napari_affinity_vae.io.atomic import atomic_path

    with atomic_path(folder / SIMULATION_RECORD) as tmp:  # --overwrite deletes by it
        tmp.write_text("".join(f"{n}\n" for n in sorted(names)))


@contextlib.contextmanager
def _emptied_on_failure(folder: Path) -> Iterator[None]:
    """A folder that held nothing before a command holds nothing after it fails (nor does one
    the command made exist): no half-written output to refuse the next try."""
    made, empty = not folder.exists(), folder.is_dir() and not any(folder.iterdir())
    try:
        yield
    except BaseException:
        if made and folder.is_dir():
            shutil.rmtree(folder)
        elif empty:
            for child in folder.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def _check_simulate_options(args: argparse.Namespace) -> None:
    """Refuse options of the other mode (a training set's, a tomogram's): they were ignored."""
    if args.subtomograms is None:
        given = [
            option
            for option, value in (
                ("--box", args.box is not None),
                ("--off-centre", args.off_centre > 0),
                ("--at-picks", args.at_picks),
            )
            if value
        ]
        if given:
            raise AffinityVAEError(f"{', '.join(given)} go with --subtomograms (a training set)")
    elif args.tomograms is not None or args.format != "mrc":
        raise AffinityVAEError(
            "--subtomograms makes a training set of boxes; --tomograms and --format make "
            "tomograms: give one or the other"
        )


def _simulated(args: argparse.Namespace, settings: Simulation) -> Iterable[Path]:
    """Write what ``avae simulate`` asked for; the files written."""
    from tqdm import tqdm

    from napari_affinity_vae.io.subtomograms import write_subtomograms
    from napari_affinity_vae.simulate.outputs import write_simulation
    from napari_affinity_vae.simulate.subtomograms import simulate_subtomograms
    from napari_affinity_vae.simulate.tomogram import simulate_tomogram

    if args.subtomograms is not None:
        from napari_affinity_vae.io.affinity import save_affinity
        from napari_affinity_vae.simulate.affinity import class_affinity
        from napari_affinity_vae.simulate.tomogram import class_diameters, class_maps

        maps = class_maps(settings)
        locate = None
        if args.at_picks:
            from napari_affinity_vae.particles.matching import picked_centres

            diameters = class_diameters(settings.classes, maps, settings.voxel_size)
            locate = functools.partial(
                picked_centres,
                voxel_size=settings.voxel_size,
                diameter=diameters.__getitem__,
                inverted=settings.invert,
            )
        boxes, table = simulate_subtomograms(
            settings, args.subtomograms, args.box or SIMULATED_BOX, tqdm, args.off_centre, locate
        )
        paths = write_subtomograms(args.outdir, boxes, table, settings.voxel_size)
        affinity, _ = class_affinity(maps, settings.voxel_size, tqdm)
        paths = (*paths, save_affinity(affinity, args.outdir / "affinity.csv"))
    elif args.format == "copick":
        from napari_affinity_vae.simulate.copick_project import write_copick_project

        paths = write_copick_project(args.outdir, settings, args.tomograms or 1, tqdm).values()
    elif args.tomograms is not None:
        from napari_affinity_vae.simulate.project import write_project

        paths = write_project(args.outdir, settings, args.tomograms, tqdm, args.format).values()
    else:
        result = simulate_tomogram(settings, tqdm)
        paths = write_simulation(result, args.outdir, tqdm, args.format).values()
    return paths


def _molecule_argument(text: str) -> tuple[str, Path]:
    """``--molecule NAME=PATH`` as (name, path)."""
    name, equals, path = text.partition("=")
    if not (equals and name and path):
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (cup=cup.mrc), got {text!r}")
    return name, Path(path)


def _molecules(named: list[tuple[str, Path]]) -> dict[str, Path]:
    """The --molecule files by class name; a name given twice is refused."""
    molecules: dict[str, Path] = {}
    for name, path in named:
        if name in molecules:
            problem = f"class {name} is {molecules[name]} already; give each molecule its own name"
            raise InputFileError(path, problem)
        molecules[name] = path
    return molecules


def _run_affinity(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.io.affinity import save_affinity
    from napari_affinity_vae.simulate.affinity import (
        SCALING,
        SHIPPED_VOXEL_SIZE,
        affinity_matrix,
        builtin_affinity,
    )
    from napari_affinity_vae.simulate.molecules import (
        box_for,
        load_reference,
        named_references,
        reference_box,
    )

    _refuse_existing(args, args.out, args.raw)
    if args.maps:
        voxel_size = args.voxel_size
        if voxel_size is None:
            voxel_size = _first_voxel_size(args.maps)
        named = named_references(args.maps)
        _check_map_size(max(reference_box(p, voxel_size) for p in named.values()), voxel_size)
        maps = {name: load_reference(path, voxel_size) for name, path in named.items()}
        scaled, raw = affinity_matrix(maps, tqdm)
    else:
        from napari_affinity_vae.simulate.molecules import MOLECULES

        voxel_size = SHIPPED_VOXEL_SIZE if args.voxel_size is None else args.voxel_size
        _check_map_size(box_for(list(MOLECULES), voxel_size), voxel_size)
        scaled, raw = builtin_affinity(list(MOLECULES), voxel_size, tqdm)
    print(save_affinity(scaled, args.out))
    print(f"affinity = {SCALING} of the best correlation c, clipped to [-1, 1]", file=sys.stderr)
    if args.raw:
        print(save_affinity(raw, args.raw))
    return 0


MAX_MAP_BOX = 160  # voxels across: the affinity search's FFTs grow with its cube


def _check_map_size(box: int, voxel_size: float) -> None:
    """Refuse an affinity search on maps more than ``MAX_MAP_BOX`` voxels across."""
    if box > MAX_MAP_BOX:
        coarsest = voxel_size * box / MAX_MAP_BOX
        raise AffinityVAEError(
            f"at {voxel_size:g} A/voxel the maps would be {box} voxels across (at most "
            f"{MAX_MAP_BOX}): give a --voxel-size of at least {math.ceil(coarsest * 100) / 100:g}"
        )


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
    _refuse_existing(args, *(checkpoint_file(out, s) for s in CHECKPOINT_SUFFIXES))
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
    with _keeping_or_removing(outputs, ".json"):  # the first process writes them
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

    _refuse_existing(args, args.out)
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


def _run_pick(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.io.particles import check_output, write_particles
    from napari_affinity_vae.io.tomogram import open_tomogram
    from napari_affinity_vae.schema import TOMO_NAME
    from napari_affinity_vae.text import count

    both = "" if args.diameter is None else ", not both"
    if (args.diameter is None) == (args.templates is None):
        raise AffinityVAEError(f"give --diameter MIN MAX (blob picker) or --templates{both}")
    given = [
        flag
        for dest, (flag, default) in args.search_options.items()
        if getattr(args, dest) != default
    ]
    if given and not args.templates:  # else silently not used by the blob picker
        are = "is" if len(given) == 1 else "are"
        raise AffinityVAEError(f"{', '.join(given)} {are} the template search's: give --templates")
    _refuse_existing(args, args.out, args.score_map)
    check_output(args.out)
    tomogram = open_tomogram(args.tomogram, args.voxel_size)
    result = _match(args, tomogram, tqdm) if args.templates else None
    picks = result.picks if result else _blob_pick(args, tomogram, tqdm)
    picks.insert(0, TOMO_NAME, tomogram.name)
    write_particles(picks, args.out, voxel_size=tomogram.voxel_size, tomogram_shape=tomogram.shape)
    if args.score_map:  # after the picks: a map without them would be left half a result
        _write_score_map(args.score_map, tomogram, result)
    found = count(len(picks), "pick")
    print(f"{args.out}: {found} (threshold {picks.attrs['threshold']:.4g})")
    return 0


def _blob_pick(args: argparse.Namespace, tomogram: Tomogram, progress: Progress) -> pd.DataFrame:
    from napari_affinity_vae.operations.pick import pick_tomogram
    from napari_affinity_vae.particles.picking import PickSettings

    settings = PickSettings(
        *args.diameter,
        voxel_size=tomogram.voxel_size,
        threshold=args.threshold,
        max_count=args.max_count,
        margin=args.margin,
        inverted=args.inverted,
    )
    return pick_tomogram(tomogram, settings, progress)


def _match(args: argparse.Namespace, tomogram: Tomogram, progress: Progress) -> MatchResult:
    from napari_affinity_vae.operations.pick import plan_match
    from napari_affinity_vae.particles.templates import MatchSettings
    from napari_affinity_vae.progress import run_steps

    settings = MatchSettings(
        voxel_size=tomogram.voxel_size,
        angular_step=args.angular_step,
        tilt_range=None if args.no_wedge else tuple(args.tilt_range),
        lowpass=args.lowpass,
        binning=args.binning,
        false_alarms=args.false_alarms,
        threshold=args.threshold,
        inverted=args.inverted,
        max_count=args.max_count,
        refine=not args.no_refine,
    )
    plan = plan_match(tomogram, args.templates, settings, args.symmetry)
    return run_steps(plan.steps(), plan.work(), "rotations", progress)


def _write_score_map(path: Path, tomogram: Tomogram, result: MatchResult) -> None:
    """The best score at every (binned) voxel, over the tomogram: a binned voxel's centre lies
    (binning - 1) / 2 voxels in."""
    from napari_affinity_vae.io.tomogram import header_origin, write_tomogram

    voxel, binning = tomogram.voxel_size * result.binning, result.binning
    shift = (binning - 1) / 2 * tomogram.voxel_size
    origin = tuple(o + shift for o in header_origin(tomogram.path))
    write_tomogram(path, result.best_scores(), voxel, origin)


def _run_embed(args: argparse.Namespace) -> int:
    _refuse_existing(args, args.out)
    sources = args.sources
    if (
        len(sources) == 2
        and _is_tomogram(sources[0])
        and not (args.workers or args.scheduler or args.resume or args.parquet or args.map)
        and not _chooses_pick_sets(args)
    ):  # else as a project of one, which these options are written for (or refused by)
        return _embed_one(args, *sources)
    return _embed_project(args)


def _chooses_pick_sets(args: argparse.Namespace) -> bool:
    """Whether the command line chooses among a copick project's picks or maps."""
    from napari_affinity_vae.io.projects.copick import PickSetChoice

    return _pick_set_choice(args) != PickSetChoice()


def _is_tomogram(path: Path) -> bool:
    """Whether ``path`` names a tomogram (an MRC-family file or an OME-Zarr folder)."""
    from napari_affinity_vae.io.compressed import uncompressed_suffix
    from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES, ZARR_SUFFIX

    return uncompressed_suffix(path) in (*TOMOGRAM_SUFFIXES, ZARR_SUFFIX)


def _embed_one(args: argparse.Namespace, tomogram_path: Path, coords: Path) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.io.frame import binned_pixel_size
    from napari_affinity_vae.io.particles import check_output, read_particles, write_particles
    from napari_affinity_vae.io.star import star_layout
    from napari_affinity_vae.io.tomogram import open_tomogram
    from napari_affinity_vae.model.embedding import embed
    from napari_affinity_vae.schema import (
        COORDINATE_BINNING,
        CROSSES_EDGE,
        TOMO_NAME,
        derived_columns,
    )

    check_output(args.out)
    tomogram = open_tomogram(tomogram_path, args.voxel_size)
    pixel_size = binned_pixel_size(tomogram.voxel_size, args.binning)
    try:
        particles = read_particles(
            coords,
            voxel_size=tomogram.voxel_size,
            tomogram_shape=tomogram.shape,
            tomo_name=args.tomo_name,
            pixel_size=pixel_size,
            drop_nan=args.skip_unusable,
            drop_outside=args.skip_unusable,
        )
    except UnusableRowsError as err:
        raise UnusableRowsError(err.path, f"{err.problem}; --skip-unusable skips them") from None
    if particles.empty:
        raise ParticleFileError(coords, "no particles to embed")
    if COORDINATE_BINNING not in particles.attrs:  # Angstrom, fractions: the binning took no part
        pixel_size = None
    particles = particles.drop(columns=derived_columns(particles))  # an earlier embedding's
    model, card = _model(args)
    table = embed(
        tomogram, particles, model, card, inverted=args.inverted, progress=tqdm, error=args.error
    )
    table = _analysed(args, table)
    if TOMO_NAME not in table:
        table.insert(0, TOMO_NAME, tomogram.name)
    centred, blocks = False, {}
    if coords.suffix.lower() == ".star" == args.out.suffix.lower():  # back in the same layout
        centred, blocks = star_layout(coords)
    write_particles(
        table,
        args.out,
        voxel_size=tomogram.voxel_size,
        tomogram_shape=tomogram.shape,
        pixel_size=pixel_size,
        star_flavour="relion5" if centred else "relion4",
        star_blocks=blocks,
    )
    _say_unaligned(table, args.out)
    edge = int(table[CROSSES_EDGE].sum())
    print(f"{args.out}: {len(table)} particles embedded ({edge} boxes crossing the edge)")
    return 0


def _say_unaligned(table: pd.DataFrame, out: Path) -> None:
    """Say how many particles lacking an angle ``out`` holds with angles 0 (a STAR file, a
    Dynamo table), as the Export dock says it."""
    from napari_affinity_vae.operations.export import format_of_suffix, without_angles
    from napari_affinity_vae.text import count

    label = format_of_suffix(out.suffix.lower(), "CSV") or "CSV"
    unaligned = without_angles({out: table}, label)
    if unaligned:
        print(
            f"avae embed: {count(unaligned, 'particle')} without angles, or with some missing, "
            f"{'was' if unaligned == 1 else 'were'} written with angles 0",
            file=sys.stderr,
        )


def _embed_project(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.io.projects.relion5 import check_centred
    from napari_affinity_vae.io.projects.writing import check_output, write_project_table
    from napari_affinity_vae.operations.embed_project import (
        FAILURES,
        SKIP_HINT,
        embed_project_steps,
    )
    from napari_affinity_vae.progress import run_steps
    from napari_affinity_vae.schema import latent_columns

    check_output(args.out)
    project = _opened_project(args, skip_unusable=args.skip_unusable)
    _choose_map(project, args)
    if project.particles.empty:
        lone = len(args.sources) == 1 and _is_tomogram(args.sources[0])
        given = ": give its coordinate file after it" if lone else ""
        raise ParticleFileError(args.sources[0], f"no particles to embed{given}")
    if args.out.suffix.lower() == ".star":  # before the work, not after
        check_centred(project, project.particles, args.out)
    parquet = args.parquet or len(project.particles) > PARQUET_ABOVE
    if parquet:
        _refuse_existing(args, args.out.with_suffix(".parquet"))
    model, card = _model(args)
    parts = args.out.with_name(args.out.name + ".parts") if args.resume else None
    with _dask_client(args) as (client, threads):
        steps = embed_project_steps(
            project,
            model,
            card,
            inverted=args.inverted,
            client=client,
            parts=parts,
            threads=threads,
            error=args.error,
        )
        try:
            table = run_steps(steps, len(project.particles), "embedding", tqdm)
        except KeyboardInterrupt:
            if parts is not None and any(parts.glob("*.parquet")):
                raise Cancelled(
                    f"the tomograms embedded so far are kept in {parts} (--resume goes on "
                    "from there)"
                ) from None
            raise
    failed = table.attrs[FAILURES]
    for name, why in failed.items():
        why = why.replace(SKIP_HINT, "--skip-unusable skips them")
        print(f"avae embed: {name} not embedded: {why}", file=sys.stderr)
    if not latent_columns(table):
        raise ParticleFileError(args.sources[0], "no tomogram could be embedded")
    table = _analysed(args, table)
    embedded = int(table[latent_columns(table)[0]].notna().sum())
    tomograms = len(set(project.tomograms) | set(failed))  # with those the files named only
    done = f"{embedded} of {len(table)} particles embedded, of {tomograms} tomograms"
    done += f" ({len(failed)} not embedded)" if failed else ""
    for path in write_project_table(project, table, args.out, parquet=parquet):
        print(f"{path}: {done}")
    return PARTLY_DONE if failed else 0


def _model(args: argparse.Namespace):
    from napari_affinity_vae.model.bundled import checkpoint_path
    from napari_affinity_vae.model.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint_path(args.model or "bundled"))


def _analysed(args: argparse.Namespace, table):
    """``table`` with the 2D embedding and clusters of its embedded rows (the others: none)."""
    from napari_affinity_vae.operations.analyse import NOTES, analyse_steps
    from napari_affinity_vae.progress import run_steps
    from napari_affinity_vae.schema import latent_columns

    latent = table[latent_columns(table)].to_numpy()
    steps = analyse_steps(latent, args.projection, args.clustering, args.clusters, args.seed)
    columns = run_steps(steps, 2, "projecting and clustering", None)
    for note in columns.attrs[NOTES]:
        print(f"avae embed: {note}", file=sys.stderr)
    columns.index = table.index
    return table.drop(columns=list(columns), errors="ignore").join(columns)


@contextlib.contextmanager
def _dask_client(args: argparse.Namespace):
    """A Dask client (and torch threads per worker) for --workers or --scheduler, else None."""
    if not (args.workers or args.scheduler):
        yield None, None
        return
    if args.scheduler:
        from napari_affinity_vae.operations.embed_project import connect

        with connect(args.scheduler) as client:
            yield client, None
        return
    if args.workers < 1:
        raise AffinityVAEError(f"--workers must be at least 1, got {args.workers}")
    from distributed import Client

    from napari_affinity_vae.model.inference import usable_cores
    from napari_affinity_vae.operations.embed_project import local_cluster

    with local_cluster(args.workers) as cluster, Client(cluster) as client:
        yield client, max(1, usable_cores() // args.workers)


def _choose_map(project, args: argparse.Namespace) -> None:
    """Cut the project's boxes from ``--map``: refused where no tomogram has such a map, or
    where ``--tomo-type`` (which chose a copick project's tomograms) names another."""
    if args.map is None:
        return
    if args.tomo_type and args.tomo_type != args.map:
        raise AffinityVAEError(
            f"--tomo-type {args.tomo_type} and --map {args.map} name different maps: give one"
        )
    if not any(args.map in entry.files for entry in project.tomograms.values()):
        kinds = dict.fromkeys(k for e in project.tomograms.values() for k in e.files)
        raise AffinityVAEError(
            f"--map {args.map}: no tomogram has such a map (they have {', '.join(kinds) or 'none'})"
        )
    project.map = args.map


def _opened_project(args: argparse.Namespace, skip_unusable: bool = False):
    """The project ``args.sources`` name, opened as ``avae project`` and ``avae embed`` do: a
    coordinate file's unusable rows are an error saying that ``--skip-unusable`` skips them."""
    from napari_affinity_vae.io.projects import open_project

    try:
        return open_project(
            args.sources,
            binning=args.binning,
            voxel_size=args.voxel_size,
            pick_sets=_pick_set_choice(args),
            tomo_name=args.tomo_name,
            skip_unusable=skip_unusable,
        )
    except UnusableRowsError as err:  # a folder's coordinate file
        raise UnusableRowsError(err.path, f"{err.problem}; --skip-unusable skips them") from None


def _run_project(args: argparse.Namespace) -> int:
    print(_opened_project(args, skip_unusable=args.skip_unusable).describe())
    return 0


def _first_voxel_size(paths: list[Path]) -> float:
    from napari_affinity_vae.io.compressed import uncompressed_suffix
    from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES
    from napari_affinity_vae.simulate.molecules import peek_map

    for path in paths:
        if uncompressed_suffix(path) in TOMOGRAM_SUFFIXES:
            return float(peek_map(path).voxel_size)
    return 10.0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
