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
    _add_demo(commands)
    _add_simulate(commands)
    _add_affinity(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="open napari with the Affinity-VAE dock widgets and the sample tomogram"
    )
    demo.add_argument("tomogram", nargs="?", type=Path, help="an MRC file instead of the sample")
    demo.add_argument("--voxel-size", type=float, help="voxel size in Angstrom (overrides header)")
    demo.add_argument(
        "--screenshot", type=Path, metavar="PATH", help="write a PNG of the window and exit"
    )
    demo.set_defaults(run=_run_demo)


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    from napari_affinity_vae.simulate.molecules import MOLECULES

    sim = commands.add_parser(
        "simulate",
        help="simulate a tomogram with ground truth (or a subtomogram training set)",
        description="Writes OUTDIR/tomogram.mrc, particles.star (ground truth), references/*.mrc "
        "and affinity.csv; with --subtomograms, OUTDIR/subtomograms.mrcs and .csv instead of the "
        "tomogram and particles.",
    )
    sim.add_argument("outdir", type=Path)
    sim.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=(200, 400, 400))
    sim.add_argument("--particles", type=int, default=300)
    noise = sim.add_mutually_exclusive_group()
    noise.add_argument("--snr", type=float, default=0.1, help="per tilt image (default 0.1)")
    noise.add_argument("--dose", type=float, help="total electrons per A^2 (Poisson noise)")
    noise.add_argument("--no-noise", action="store_true")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--voxel-size", type=float, default=10.0, help="Angstrom (default 10)")
    sim.add_argument("--classes", nargs="+", choices=list(MOLECULES), default=list(MOLECULES))
    sim.add_argument("--vesicles", type=int, default=0)
    sim.add_argument("--fiducials", type=int, default=0, help="10 nm gold beads")
    sim.add_argument("--defocus", type=float, default=3.0, help="micrometres underfocus")
    sim.add_argument(
        "--tilt-range", type=float, nargs=3, metavar=("MIN", "MAX", "STEP"), default=(-60, 60, 3)
    )
    sim.add_argument("--phase-flip", action="store_true", help="correct the CTF by phase flipping")
    sim.add_argument("--invert", action="store_true", help="protein white instead of dark")
    sim.add_argument("--subtomograms", type=int, metavar="PER_CLASS", help="training-set mode")
    sim.add_argument("--box", type=int, default=32, help="subtomogram box in voxels")
    sim.set_defaults(run=_run_simulate)


def _add_affinity(commands: argparse._SubParsersAction) -> None:
    aff = commands.add_parser(
        "affinity",
        help="class affinity matrix from reference maps (best NCC over rotations)",
        description="Maps are MRC files or PDB/mmCIF models (class name = file name); "
        "without MAPS, the built-in molecule classes.",
    )
    aff.add_argument("maps", nargs="*", type=Path)
    aff.add_argument("--out", type=Path, required=True, help="affinity CSV to write")
    aff.add_argument("--raw", type=Path, help="also write the unscaled best correlations")
    aff.add_argument("--voxel-size", type=float, help="Angstrom (default: the first map's, or 10)")
    aff.set_defaults(run=_run_affinity)


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
    except KeyboardInterrupt:
        print(f"avae {args.command}: cancelled; no partial files were left", file=sys.stderr)
        return 130


def _run_demo(args: argparse.Namespace) -> int:
    from napari_affinity_vae.demo import run_demo

    return run_demo(args.tomogram, voxel_size=args.voxel_size, screenshot=args.screenshot)


def _run_simulate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.simulate.outputs import write_simulation
    from napari_affinity_vae.simulate.subtomograms import simulate_subtomograms, write_subtomograms
    from napari_affinity_vae.simulate.tiltseries import Microscope
    from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram

    low, high, step = args.tilt_range
    settings = Simulation(
        shape=tuple(args.shape),
        particles=args.particles,
        classes=tuple(args.classes),
        voxel_size=args.voxel_size,
        snr=None if (args.no_noise or args.dose) else args.snr,
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
    )
    if args.subtomograms:
        boxes, table = simulate_subtomograms(settings, args.subtomograms, args.box, tqdm)
        paths = write_subtomograms(args.outdir, boxes, table, settings.voxel_size)
    else:
        paths = write_simulation(simulate_tomogram(settings, tqdm), args.outdir, tqdm).values()
    for path in paths:
        print(path)
    return 0


def _run_affinity(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_affinity_vae.simulate.affinity import (
        affinity_matrix,
        builtin_affinity,
        save_affinity,
    )
    from napari_affinity_vae.simulate.molecules import load_reference

    if args.maps:
        voxel_size = args.voxel_size or _first_voxel_size(args.maps)
        maps = {path.stem: load_reference(path, voxel_size) for path in args.maps}
        scaled, raw = affinity_matrix(maps, tqdm)
    else:
        from napari_affinity_vae.simulate.molecules import MOLECULES

        scaled, raw = builtin_affinity(list(MOLECULES), args.voxel_size or 10.0, tqdm)
    print(save_affinity(scaled, args.out))
    if args.raw:
        print(save_affinity(raw, args.raw))
    return 0


def _first_voxel_size(paths: list[Path]) -> float:
    from napari_affinity_vae.io.tomogram import open_tomogram

    for path in paths:
        if path.suffix.lower() in (".mrc", ".map", ".rec", ".mrcs"):
            return float(open_tomogram(path).voxel_size)
    return 10.0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
