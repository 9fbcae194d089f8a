"""The ``avae`` command line: the same pipeline as the napari widgets, without a screen."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_affinity_vae import __version__
from napari_affinity_vae.errors import AffinityVAEError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avae",
        description="Explore cryo-ET tomograms through the latent space of an affinity-VAE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="open napari with the Affinity-VAE dock widgets (and a tomogram, if given)"
    )
    demo.add_argument("tomogram", nargs="?", type=Path, help="an MRC/REC/MAP/ST file to open")
    demo.add_argument("--voxel-size", type=float, help="voxel size in Angstrom (overrides header)")
    demo.add_argument(
        "--screenshot", type=Path, metavar="PATH", help="write a PNG of the window and exit"
    )
    demo.set_defaults(run=_run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except AffinityVAEError as err:
        print(f"avae {args.command}: error: {err}", file=sys.stderr)
        return 2


def _run_demo(args: argparse.Namespace) -> int:
    from napari_affinity_vae.demo import run_demo

    return run_demo(args.tomogram, voxel_size=args.voxel_size, screenshot=args.screenshot)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
