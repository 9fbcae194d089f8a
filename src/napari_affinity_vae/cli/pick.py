"""``avae pick``: particles found by blob detection or template matching."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from napari_affinity_vae.errors import (
    AffinityVAEError,
)

if TYPE_CHECKING:
    import pandas as pd

    from napari_affinity_vae.io.tomogram import Tomogram
    from napari_affinity_vae.particles.templates import MatchResult
    from napari_affinity_vae.progress import Progress
from napari_affinity_vae.cli.options import (
    angular_step,
    finite,
    non_negative,
    positive,
    positive_int,
    ranged,
)
from napari_affinity_vae.cli.outputs import add_overwrite, mrc_output, refuse_existing
from napari_affinity_vae.cli.simulate import TILT_LIMITS


def add_pick(commands: argparse._SubParsersAction) -> None:
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
        type=positive,
        nargs=2,
        metavar=("MIN", "MAX"),
        action=ranged(equal=True),
        help="particle diameters in Angstrom (the blob picker)",
    )
    pk.add_argument("--out", type=Path, required=True, help=".star, .csv, .tbl, .coords or .mod")
    pk.add_argument("--voxel-size", type=positive, help="Angstrom (overrides the header)")
    pk.add_argument(
        "--threshold", type=finite, help="score threshold in noise deviations (default: automatic)"
    )
    pk.add_argument("--max-count", type=positive_int)
    pk.add_argument(
        "--margin", type=non_negative, help="Angstrom from the faces (default: MIN / 2)"
    )
    pk.add_argument("--inverted", action="store_true", help="protein is white")
    tm = pk.add_argument_group("template matching")
    tm.add_argument(
        "--templates", type=Path, nargs="+", metavar="MAP", help="reference maps or atomic models"
    )
    tm.add_argument("--angular-step", type=angular_step, default=30.0, help="degrees (default 30)")
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
        type=finite,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(-60.0, 60.0),
        action=ranged(within=TILT_LIMITS),
        help="degrees, about y, for the missing wedge (default -60 60)",
    )
    tm.add_argument("--no-wedge", action="store_true", help="no missing wedge (subtomogram sets)")
    tm.add_argument("--lowpass", type=positive, help="Angstrom (default three search voxels)")
    tm.add_argument(
        "--binning",
        type=positive_int,
        help="search binned (default: automatic on the CPU, 1 on a GPU)",
    )
    tm.add_argument(
        "--false-alarms",
        type=positive,
        default=1.0,
        help="noise peaks expected above the automatic threshold over the search (default 1)",
    )
    tm.add_argument("--score-map", type=mrc_output, help="also write the best score at every voxel")
    add_overwrite(pk)
    searched = {a.dest: (a.option_strings[0], a.default) for a in tm._group_actions}
    searched.pop("templates")
    pk.set_defaults(run=_run_pick, search_options=searched)


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
    refuse_existing(args, args.out, args.score_map)
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
