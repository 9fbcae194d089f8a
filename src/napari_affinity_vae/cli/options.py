"""Argument types and option groups the commands share."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


def add_pick_set_options(command: argparse.ArgumentParser) -> None:
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


def number(convert: Callable[[str], float], wanted: str, ok: Callable[[float], bool]):
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


positive = number(float, "a positive number", lambda v: math.isfinite(v) and v > 0)


non_negative = number(float, "a number of at least 0", lambda v: math.isfinite(v) and v >= 0)


finite = number(float, "a finite number", math.isfinite)


positive_int = number(int, "a whole number of at least 1", lambda v: v >= 1)


count_type = number(int, "a whole number of at least 0", lambda v: v >= 0)


fraction = number(float, "a fraction of at least 0 and below 1", lambda v: 0 <= v < 1)


angular_step = number(float, "degrees above 0 and at most 180", lambda v: 0 < v <= 180)


batch_count = number(int, '"auto" or a whole number of at least 1', lambda v: v >= 1)


def batch_size(text: str) -> int:
    """``--batch-size``: "auto" (0, which training sizes for the set) or a whole number."""
    return 0 if text == "auto" else batch_count(text)


def ranged(
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


def pick_set_choice(args: argparse.Namespace) -> object:
    from napari_affinity_vae.io.projects.copick import PickSetChoice

    return PickSetChoice(args.object, args.user, args.session, args.voxel_spacing, args.tomo_type)
