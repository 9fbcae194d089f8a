"""``avae affinity``: the affinity matrix of molecules from their maps or atomic models."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from napari_affinity_vae.errors import (
    AffinityVAEError,
)

if TYPE_CHECKING:
    pass
from napari_affinity_vae.cli.embed import _first_voxel_size
from napari_affinity_vae.cli.options import positive
from napari_affinity_vae.cli.outputs import add_overwrite, refuse_existing


def add_affinity(commands: argparse._SubParsersAction) -> None:
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
        "--voxel-size", type=positive, help="Angstrom (default: the first map's, or 10)"
    )
    add_overwrite(aff)
    aff.set_defaults(run=_run_affinity)


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

    refuse_existing(args, args.out, args.raw)
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
