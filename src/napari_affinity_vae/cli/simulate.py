"""``avae demo`` and ``avae simulate``: the sample in napari, simulated tomograms and
subtomograms."""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from napari_affinity_vae.errors import (
    AffinityVAEError,
    InputFileError,
    OutputExistsError,
)

if TYPE_CHECKING:
    from napari_affinity_vae.simulate.tomogram import Simulation
from napari_affinity_vae.cli.options import (
    count_type,
    finite,
    non_negative,
    positive,
    positive_int,
    ranged,
)
from napari_affinity_vae.cli.outputs import add_overwrite


def add_demo(commands: argparse._SubParsersAction) -> None:
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


def add_simulate(commands: argparse._SubParsersAction) -> None:
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
        "--shape", type=positive_int, nargs=3, metavar=("Z", "Y", "X"), default=(200, 400, 400)
    )
    sim.add_argument("--particles", type=count_type, default=300)
    noise = sim.add_mutually_exclusive_group()
    noise.add_argument("--snr", type=positive, default=0.1, help="per tilt image (default 0.1)")
    noise.add_argument("--dose", type=positive, help="total electrons per A^2 (Poisson noise)")
    noise.add_argument("--no-noise", action="store_true")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--voxel-size", type=positive, default=10.0, help="Angstrom (default 10)")
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
    sim.add_argument("--vesicles", type=count_type, default=0)
    sim.add_argument("--fiducials", type=count_type, default=0, help="10 nm gold beads")
    sim.add_argument("--defocus", type=finite, default=3.0, help="micrometres underfocus")
    sim.add_argument(
        "--tilt-range",
        type=finite,
        nargs=3,
        metavar=("MIN", "MAX", "STEP"),
        default=(-60, 60, 3),
        action=ranged(within=TILT_LIMITS, step=True),
    )
    sim.add_argument("--phase-flip", action="store_true", help="correct the CTF by phase flipping")
    sim.add_argument("--invert", action="store_true", help="protein white instead of dark")
    sim.add_argument(
        "--subtomograms", type=positive_int, metavar="PER_CLASS", help="training-set mode"
    )
    sim.add_argument(
        "--off-centre",
        type=non_negative,
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
        "--box", type=positive_int, help=f"subtomogram box in voxels (default {SIMULATED_BOX})"
    )
    sim.add_argument(
        "--tomograms", type=positive_int, metavar="N", help="a RELION 5 project of N tomograms"
    )
    sim.add_argument(
        "--format",
        choices=[*TOMOGRAM_FORMATS, "copick"],
        default="mrc",
        help="tomograms as MRC files or multiscale OME-Zarr folders (default mrc); copick: a "
        "copick project of --tomograms runs (default 1), the ground truth as picks",
    )
    add_overwrite(sim, "replace an earlier simulation in OUTDIR (its other files stay)")
    sim.set_defaults(run=_run_simulate)


SIMULATED_BOX = 32  # voxels: avae simulate --subtomograms' boxes unless --box says


TILT_LIMITS = (-90.0, 90.0)  # degrees: a tilt series about y


SIMULATION_RECORD = ".avae-simulation"  # in a simulated folder: what it wrote there


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
