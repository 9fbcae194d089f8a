"""A library of molecule classes built from pseudo-atomic models, and users' own references.

Each class is a set of pseudo-atoms (Angstrom, x y z, centred on the origin) filling a few
ellipsoidal subunits, shaped after complexes people look for in tomograms. Shapes are fixed (each
builder draws from its own seeded generator), so a class name always means the same molecule.
Rendered maps hold the fraction of each voxel filled by protein (about 1 inside a molecule); a
user's molecule is scaled to match by :func:`user_molecule_map`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.compressed import uncompressed_name, uncompressed_suffix
from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES, Tomogram, open_tomogram
from napari_affinity_vae.simulate.density import points_to_density
from napari_affinity_vae.simulate.geometry import rotate_map
from napari_affinity_vae.volumes import fit_box, resample

SPACING = 5.0  # Angstrom between pseudo-atoms
ATOM_SIGMA = 5.0  # Angstrom, width of each pseudo-atom's Gaussian
VOLUME_PER_ATOM = 17.0  # Angstrom^3 of protein per non-hydrogen atom
MEAN_ATOMIC_NUMBER = 6.7  # of non-hydrogen protein atoms
SUPPORT_LEVEL = 0.5  # a voxel at least half full of protein is inside a molecule
PEAK_PERCENTILE = 99.9  # of a user's map: its peak density, unmoved by a few hot voxels
SOLVENT_MARGIN = 2  # voxels of a user's map kept beyond its support; zero further out


Ellipsoid = tuple[np.ndarray, np.ndarray, np.ndarray]  # centre, radii, orientation (x y z)


def _ellipsoid(
    centre: tuple[float, float, float] | np.ndarray,
    radii: tuple[float, float, float],
    orientation: np.ndarray | None = None,
) -> Ellipsoid:
    """One subunit: an ellipsoid (Angstrom, x y z), its axes turned by ``orientation``."""
    turn = np.eye(3) if orientation is None else np.asarray(orientation, dtype=float)
    return np.asarray(centre, dtype=float), np.asarray(radii, dtype=float), turn


def _ring(
    n: int, radius: float, z: float, radii: tuple[float, float, float], phase: float = 0.0
) -> list[Ellipsoid]:
    """``n`` identical subunits evenly spaced on a circle about the z axis, each facing outwards."""
    parts = []
    for k in range(n):
        angle = phase + 2 * np.pi * k / n
        facing = Rotation.from_euler("z", angle).as_matrix()
        parts.append(_ellipsoid((radius * np.cos(angle), radius * np.sin(angle), z), radii, facing))
    return parts


def ribosome() -> list[Ellipsoid]:
    """A large subunit with protuberance and two stalks, and a small subunit with head and
    platform: no symmetry (~280 A)."""
    stalk = Rotation.from_euler("y", 30, degrees=True).as_matrix()
    body = Rotation.from_euler("x", 20, degrees=True).as_matrix()
    return [
        _ellipsoid((0, 0, -30), (85, 80, 70)),
        _ellipsoid((35, -30, -10), (55, 50, 50)),
        _ellipsoid((10, -15, 45), (30, 28, 28)),
        _ellipsoid((-85, -35, -5), (28, 18, 22)),
        _ellipsoid((80, 35, 0), (12, 12, 35), stalk),
        _ellipsoid((-20, 30, 60), (75, 50, 32), body),
        _ellipsoid((-70, 45, 80), (30, 28, 25)),
        _ellipsoid((30, 55, 45), (28, 22, 20)),
    ]


def proteasome() -> list[Ellipsoid]:
    """Four stacked rings of seven subunits around a channel (D7, ~150 x 125 A)."""
    return [
        p for i, z in enumerate((-57, -19, 19, 57)) for p in _ring(7, 42, z, (20, 20, 17), i * 0.2)
    ]


def _chaperonin_ring(z: float, apical: float) -> list[Ellipsoid]:
    return _ring(7, 50, z, (22, 22, 30)) + _ring(7, 48, apical, (15, 15, 12), np.pi / 7)


def chaperonin() -> list[Ellipsoid]:
    """Two back-to-back rings of seven elongated subunits with apical domains (D7, ~145 A)."""
    return _chaperonin_ring(-34, -62) + _chaperonin_ring(34, 62)


def single_ring() -> list[Ellipsoid]:
    """One chaperonin-like ring of seven with apical domains (C7, ~145 x 75 A)."""
    return _chaperonin_ring(-10, 18)


FILAMENT_TWIST, FILAMENT_RISE = -166.6, 13.5  # degrees about z and Angstrom along it per subunit


def filament() -> list[Ellipsoid]:
    """A polar helical segment of 19 two-lobed subunits (actin-like twist, ~290 x 100 A): but
    for its ends, turning it by ``FILAMENT_TWIST`` about its axis while shifting it by
    ``FILAMENT_RISE`` along it leaves it as it is."""
    parts = []
    for k in range(19):
        angle = np.radians(FILAMENT_TWIST * k)
        z = FILAMENT_RISE * (k - 9)
        facing = Rotation.from_euler("z", angle).as_matrix()
        centre = np.array([25 * np.cos(angle), 25 * np.sin(angle), z])
        parts.append(_ellipsoid(centre, (18, 16, 15), facing))
        parts.append(
            _ellipsoid(centre + facing @ np.array([14.0, 16.0, 6.0]), (12, 11, 10), facing)
        )
    return parts


def elongated_dimer() -> list[Ellipsoid]:
    """Two unequal lobes joined at an angle, with knobs at both ends: no symmetry (~230 A)."""
    bend = Rotation.from_euler("y", 20, degrees=True).as_matrix()
    return [
        _ellipsoid((0, 0, -55), (42, 24, 60)),
        _ellipsoid((25, 10, 50), (34, 20, 48), bend),
        _ellipsoid((55, 30, 70), (18, 18, 18)),
        _ellipsoid((-30, -25, -80), (16, 16, 16)),
    ]


def tetrahedral() -> list[Ellipsoid]:
    """Four identical subunits on the vertices of a tetrahedron, each facing out (T, ~160 A)."""
    vertices = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
    parts = []
    for v in vertices:
        facing = Rotation.align_vectors([v], [[0.0, 0.0, 1.0]])[0].as_matrix()
        parts.append(_ellipsoid(55 * v, (28, 24, 32), facing))
    return parts


def globular() -> list[Ellipsoid]:
    """A small protein: a core domain with three smaller domains around it, no symmetry
    (~110 A)."""
    return [
        _ellipsoid((0, 0, 0), (30, 22, 18)),
        _ellipsoid((32, 12, 8), (18, 14, 12)),
        _ellipsoid((-12, 26, -14), (14, 12, 12)),
        _ellipsoid((-20, -14, 24), (12, 10, 10)),
    ]


def atp_synthase() -> list[Ellipsoid]:
    """A six-fold head on a stalk over a membrane ring, with one peripheral stalk (~260 A)."""
    head = [
        _ellipsoid((34 * np.cos(a), 34 * np.sin(a), 80), (26, 26, 32) if k % 2 else (24, 24, 30))
        for k, a in enumerate(np.linspace(0, 2 * np.pi, 6, endpoint=False))
    ]
    return [
        *head,
        _ellipsoid((0, 0, 15), (14, 14, 45)),
        *_ring(10, 26, -55, (13, 13, 24)),
        _ellipsoid((48, 0, -55), (22, 18, 30)),
        _ellipsoid((62, 0, 20), (10, 10, 75)),
        _ellipsoid((40, 0, 112), (18, 18, 14)),
    ]


MOLECULES: dict[str, Callable[[], list[Ellipsoid]]] = {
    "ribosome": ribosome,
    "proteasome": proteasome,
    "chaperonin": chaperonin,
    "single_ring": single_ring,
    "filament": filament,
    "elongated_dimer": elongated_dimer,
    "tetrahedral": tetrahedral,
    "globular": globular,
    "atp_synthase": atp_synthase,
}
# the point groups of the symmetric classes (Schoenflies, main axis z) and the turn (radians)
# about z of their two-fold axes from x; every other class is C1
SYMMETRY = {
    "proteasome": ("D7", 0.3),  # each ring is turned 0.2 rad from the one below
    "chaperonin": ("D7", 0.0),
    "single_ring": ("C7", 0.0),
    "tetrahedral": ("T", 0.0),
}
ASYMMETRIC = tuple(name for name in MOLECULES if name not in SYMMETRY)  # C1


def symmetry(name: str) -> Rotation:
    """The rotations that leave built-in molecule ``name`` as it is (the identity alone for
    an asymmetric one or a user's molecule), acting on (x, y, z)."""
    if name not in SYMMETRY:
        return Rotation.identity(1)
    group, phase = SYMMETRY[name]
    turn = Rotation.from_euler("z", phase)
    return turn * Rotation.create_group(group) * turn.inv()


@functools.cache
def pseudo_atoms(name: str) -> np.ndarray:
    """The pseudo-atoms of molecule ``name``: a grid filling the union of its subunits
    (Angstrom, x y z, centred on their mean)."""
    if name not in MOLECULES:
        raise KeyError(f"unknown molecule {name!r}; known: {', '.join(MOLECULES)}")
    parts = MOLECULES[name]()
    reach = max(np.abs(c).max() + r.max() for c, r, _ in parts)
    axis = np.arange(-reach, reach + SPACING, SPACING)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = np.zeros(len(grid), dtype=bool)
    for centre, radii, turn in parts:
        local = (grid - centre) @ turn  # coordinates along the subunit's own axes
        inside |= np.sum((local / radii) ** 2, axis=1) <= 1.0
    points = grid[inside] - grid[inside].mean(axis=0)
    points.flags.writeable = False  # cached: shared by every caller
    return points


def extent(name: str) -> float:
    """Diameter (Angstrom) of the sphere about its centre that holds molecule ``name``."""
    return 2 * float(np.linalg.norm(pseudo_atoms(name), axis=1).max()) + 2 * ATOM_SIGMA


def box_holding(diameter: float, voxel_size: float) -> int:
    """An even cubic box (voxels) that holds a molecule ``diameter`` Angstrom across in any
    orientation."""
    return int(2 * np.ceil(diameter / voxel_size / 2)) + 2


def box_for(names: list[str] | tuple[str, ...], voxel_size: float) -> int:
    """An even cubic box (voxels) that holds every named molecule in any orientation."""
    return box_holding(max(extent(n) for n in names), voxel_size)


def molecule_map(name: str, voxel_size: float = 10.0, box: int | None = None) -> np.ndarray:
    """A (z, y, x) density map of molecule ``name`` at ``voxel_size`` Angstrom per voxel."""
    box = box or box_for([name], voxel_size)
    weight = (SPACING / voxel_size) ** 3
    sigma = max(ATOM_SIGMA, 0.5 * voxel_size)
    return points_to_density(pseudo_atoms(name), weight, voxel_size, box, sigma)


def reference_maps(
    names: list[str] | tuple[str, ...] | None = None,
    voxel_size: float = 10.0,
    box: int | None = None,
) -> dict[str, np.ndarray]:
    """Maps of the named molecules (all by default) in one common box."""
    names = list(names or MOLECULES)
    box = box or box_for(names, voxel_size)
    return {name: molecule_map(name, voxel_size, box) for name in names}


def named_references(paths: list[Path]) -> dict[str, Path]:
    """Reference maps or models by class name, the file's name without its suffixes
    (``emd_3197`` for ``emd_3197.map.gz``); two of one name are refused."""
    named: dict[str, Path] = {}
    for path in map(Path, paths):
        name = uncompressed_name(path).stem
        if name in named:
            problem = f"class {name} is {named[name]} already; give each map a name of its own"
            raise InputFileError(path, problem)
        named[name] = path
    return named


def load_reference(path: str | Path, voxel_size: float, box: int | None = None) -> np.ndarray:
    """A user's reference as a (z, y, x) map at ``voxel_size``: an MRC map (resampled) or a PDB /
    mmCIF atomic model (atoms weighted by atomic number, rendered as Gaussians)."""
    path = Path(path)
    suffix = uncompressed_suffix(path)
    if suffix in TOMOGRAM_SUFFIXES:  # .map.gz and .mrc.bz2 too
        source = open_map(path)
        volume = resample(np.asarray(source.data, dtype=np.float32), source.voxel_size / voxel_size)
        volume -= np.median(volume[[0, -1]])  # solvent to zero
        if not np.isfinite(volume).all():
            raise InputFileError(path, "the map holds NaN or infinite values")
        if not np.ptp(volume) > 0:  # every voxel alike
            raise InputFileError(path, "the map holds no density above its solvent level")
    elif suffix in (".pdb", ".ent", ".cif", ".mmcif"):  # gemmi reads them gzipped too
        points, weights = _centred_atoms(path)
        fill = weights / MEAN_ATOMIC_NUMBER * VOLUME_PER_ATOM / voxel_size**3
        grid = box or _model_box(points, voxel_size)
        volume = points_to_density(points, fill, voxel_size, grid, max(2.0, 0.5 * voxel_size))
    else:
        raise InputFileError(path, "a reference must be an MRC map or a PDB / mmCIF model")
    return fit_box(volume, box) if box else volume


def open_map(path: Path) -> Tomogram:
    """A reference map, whose header must give its voxel size: no option gives a map's own."""
    source = open_tomogram(path, require_voxel_size=False)
    if source.voxel_size is None:
        raise InputFileError(
            path,
            "the map's header gives no voxel size (0); write it into the header (IMOD: "
            "alterheader -del; Python: mrcfile's voxel_size)",
        )
    return source


def peek_map(path: Path) -> Tomogram:
    """:func:`open_map` without its warnings (a compressed map's, for one): they are told once,
    when the map is loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return open_map(path)


def reference_box(path: str | Path, voxel_size: float) -> int:
    """The largest side (voxels) of :func:`load_reference`'s map of ``path`` at ``voxel_size``,
    from the map's header or the model's atoms, without making the map."""
    path = Path(path)
    if uncompressed_suffix(path) in TOMOGRAM_SUFFIXES:
        source = peek_map(path)
        return round(max(source.shape) * source.voxel_size / voxel_size)
    if uncompressed_suffix(path) in (".pdb", ".ent", ".cif", ".mmcif"):
        return _model_box(_centred_atoms(path)[0], voxel_size)
    raise InputFileError(path, "a reference must be an MRC map or a PDB / mmCIF model")


def _centred_atoms(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A model's atom positions about their centre of mass, and their weights (read once while
    the file is unchanged: sizing the box and rendering the map read the same model)."""
    try:
        stat = path.stat()
    except OSError as err:
        raise InputFileError(path, f"cannot be read ({err.strerror})") from None
    version = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return _centred_atoms_of(path.resolve(), version)


@functools.lru_cache(maxsize=4)
def _centred_atoms_of(path: Path, _version: tuple) -> tuple[np.ndarray, np.ndarray]:
    points, weights = _atoms(path)
    points = points - np.average(points, axis=0, weights=weights)
    points.flags.writeable = weights.flags.writeable = False  # cached: shared by every caller
    return points, weights


def _model_box(points: np.ndarray, voxel_size: float) -> int:
    """The even cubic box (voxels) a model of centred ``points`` is rendered in."""
    size = 2 * np.linalg.norm(points, axis=1).max() + 4 * voxel_size
    return int(2 * np.ceil(size / voxel_size / 2))


def user_molecule_map(path: str | Path, voxel_size: float) -> np.ndarray:
    """A user's molecule (an MRC map, compressed too, or a PDB / mmCIF model) as a (z, y, x) map
    at ``voxel_size`` that behaves as protein like the built-in classes' maps.

    The file is read with :func:`load_reference` (a map resampled with its solvent level moved to
    zero; a model rendered as protein fractions). A map's units are arbitrary, so it is scaled to
    protein fractions: negated first if its strongest density is negative (protein dark, as in an
    average of a tomogram that is not inverted), then divided by its peak, the 99.9th percentile
    of its voxels (a molecule's densest voxels are full of protein; a few hot voxels do not set
    the scale), with negative values clipped to 0. A built-in map written in arbitrary units reads
    back within 15% of its total density (30% from a map at half the voxel size). The support,
    the voxels at least half full (``SUPPORT_LEVEL``), gives the extent; density further than
    ``SOLVENT_MARGIN`` voxels from the support (solvent noise) is set to 0. The map is centred on
    its centre of mass and cut to the even cubic box that holds its support in any orientation,
    like a built-in map.
    """
    volume = _protein_fraction(load_reference(path, voxel_size), Path(path))
    centre = np.array(ndimage.center_of_mass(volume))
    box = box_holding(_support_diameter(volume, centre, voxel_size), voxel_size)
    shift = np.asarray(volume.shape) // 2 - centre  # the centre of mass to the box's centre
    return rotate_map(volume, np.eye(3), shift, (box, box, box)).astype(np.float32)


def map_extent(volume: np.ndarray, voxel_size: float) -> float:
    """Diameter (Angstrom) of the sphere about the box's centre voxel that holds the support
    (voxels at least half full) of a protein-fraction map such as :func:`user_molecule_map`'s."""
    return _support_diameter(volume, np.asarray(volume.shape) // 2, voxel_size)


def _support_diameter(volume: np.ndarray, centre: np.ndarray, voxel_size: float) -> float:
    """Twice the distance (Angstrom) from ``centre`` (voxels) to the far side of the farthest
    voxel at least half full."""
    inside = np.argwhere(volume >= SUPPORT_LEVEL)
    return float(2 * (np.linalg.norm(inside - centre, axis=1).max() + 0.5) * voxel_size)


def _protein_fraction(volume: np.ndarray, path: Path) -> np.ndarray:
    """A map with its solvent at zero, in arbitrary units, scaled to protein fractions, with the
    solvent away from its support set to zero (see :func:`user_molecule_map`)."""
    if -volume.min() > volume.max():
        volume = -volume
    peak = np.percentile(volume, PEAK_PERCENTILE)
    if not peak > 0:
        raise InputFileError(path, "the map holds no density above its solvent level")
    volume = np.clip(volume / peak, 0, None)
    near = ndimage.binary_dilation(volume >= SUPPORT_LEVEL, iterations=SOLVENT_MARGIN)
    return np.where(near, volume, 0).astype(np.float32)


def _atoms(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import gemmi

    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as err:
        raise InputFileError(path, f"not a readable atomic model ({err})") from None
    if len(structure) == 0:
        raise InputFileError(
            path,
            "no model found in it: no atoms, or an mmCIF atom_site loop without "
            "_atom_site.pdbx_PDB_model_num",
        )
    structure.remove_hydrogens()
    atoms = [
        (cra.atom.pos.x, cra.atom.pos.y, cra.atom.pos.z, cra.atom.element.atomic_number)
        for cra in structure[0].all()
    ]
    if not atoms:
        raise InputFileError(path, "the model has no atoms")
    table = np.asarray(atoms, dtype=float)
    return table[:, :3], table[:, 3]
