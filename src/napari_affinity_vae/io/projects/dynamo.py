"""Dynamo projects: a table whose column 20 numbers the tomograms, with the index that maps the
numbers to files: a ``.doc`` (``number path`` per line) or a volume list ``.vll`` (a path per
line, each followed by optional ``* key = value`` lines such as ``* index = 3`` and
``* apix = 10``; without ``index`` the tomograms are numbered from 1 in order). In a ``.vll``,
``#`` lines are comments and ``>`` and ``!`` lines other directives: none is a tomogram."""

from __future__ import annotations

from pathlib import Path

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.frame import CoordinateFrame
from napari_affinity_vae.io.projects.folder import entry
from napari_affinity_vae.io.projects.project import Project
from napari_affinity_vae.io.projects.relion5 import find_root
from napari_affinity_vae.io.tables import read_dynamo

INDEX_SUFFIXES = (".doc", ".vll")
VLL_DIRECTIVES = ("#", ">", "!")  # comments and directives of a volume list, not tomograms


def read_index(path: Path) -> dict[str, tuple[Path, float | None]]:
    """Tomogram number (as text) to file and voxel size (``apix``, None if not given)."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise ParticleFileError(path, f"cannot be read ({err})") from None
    found: dict[str, list] = {}
    if path.suffix.lower() == ".doc":
        for line in filter(None, lines):
            number, file = ([*line.split(maxsplit=1), ""])[:2]
            if not number.isdigit() or not file:
                raise ParticleFileError(path, f"expected 'number path' lines, found {line!r}")
            if str(int(number)) in found:
                raise ParticleFileError(path, f"numbers tomogram {int(number)} more than once")
            found[str(int(number))] = [file, None]
        return _resolved(path, found)
    current = None
    for line in filter(None, lines):
        if line.startswith(VLL_DIRECTIVES):
            continue
        if line.startswith("*"):
            key, _, value = line[1:].partition("=")
            if current is None:
                raise ParticleFileError(path, f"{line!r} comes before any tomogram path")
            current[key.strip()] = value.strip()
        else:
            current = {"path": line}
            found[str(len(found) + 1)] = current  # renumbered below by "index" where given
    try:
        numbers = [str(int(float(v.get("index", k)))) for k, v in found.items()]
        if len(set(numbers)) < len(numbers):
            raise ParticleFileError(path, "numbers a tomogram more than once (* index)")
        numbered = dict(zip(numbers, found.values(), strict=True))
        apix = {k: float(v["apix"]) if "apix" in v else None for k, v in numbered.items()}
    except ValueError as err:
        raise ParticleFileError(path, f"an index or apix that is not a number ({err})") from None
    return _resolved(path, {k: [v["path"], apix[k]] for k, v in numbered.items()})


def _resolved(index: Path, found: dict[str, list]) -> dict[str, tuple[Path, float | None]]:
    root = find_root(index.parent, [file for file, _ in found.values()])
    return {k: (root / file, size) for k, (file, size) in found.items()}


def read_dynamo_project(
    table: Path, index: Path, voxel_size: float | None = None, binning: float = 1.0
) -> Project:
    """The particles of every tomogram of a Dynamo table, in voxels of the indexed tomograms
    (the table's pixels ``binning`` times finer than their voxels)."""
    files = read_index(index)
    frame = CoordinateFrame(voxel_size=1.0, pixel_size=1 / binning)  # voxels per pixel
    particles = read_dynamo(table, frame, every_tomogram=True)
    numbers = list(dict.fromkeys([*files, *particles["tomo_name"].astype(str)]))
    entries = {
        n: entry(n, files[n][0], voxel_size or files[n][1]) if n in files else entry(n, None)
        for n in numbers
    }
    return Project(entries, particles, (table, index), binning=binning)
