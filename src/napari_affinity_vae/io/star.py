"""RELION STAR particle files: 3.1 / 4 (pixel coordinates) and 5 (centred Angstrom coordinates).

Pixel coordinates are 0-based voxel positions along x, y, z (voxel i centred at i, as in napari).
RELION 4 tomography counts them in unbinned tilt-series pixels, whose size the optics block gives
(``rlnTomoTiltSeriesPixelSize``): they are scaled to the tomogram's voxels, whatever its binning.
RELION 5 centred coordinates are Angstrom from the tomogram centre, at ``shape / 2`` voxels.
WarpTools 2 template matching writes ``rlnCoordinate*`` as fractions (0 to 1) of the tomogram's
size along each axis, whatever its binning.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import starfile
from pandas.api.types import is_object_dtype, is_string_dtype
from scipy.spatial.transform import Rotation

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.frame import CoordinateFrame
from napari_affinity_vae.io.validate import (
    named_tomograms,
    numeric_column,
    numeric_columns,
    select_tomogram,
)
from napari_affinity_vae.schema import (
    ANGSTROM_ORIGIN,
    AXES,
    CLASS_NAME,
    COORDINATE_BINNING,
    LABEL,
    MICROGRAPH_COLUMN,
    OPTICS_GROUP,
    PSI,
    ROT,
    STAR_BLOCKS,
    TILT,
    TOMO_NAME,
)

PIXEL_COLUMNS = {"x": "rlnCoordinateX", "y": "rlnCoordinateY", "z": "rlnCoordinateZ"}
CENTRED_COLUMNS = {
    "x": "rlnCenteredCoordinateXAngst",
    "y": "rlnCenteredCoordinateYAngst",
    "z": "rlnCenteredCoordinateZAngst",
}
ORIGIN_COLUMNS = {"x": "rlnOriginXAngst", "y": "rlnOriginYAngst", "z": "rlnOriginZAngst"}
PIXEL_ORIGIN_COLUMNS = {"x": "rlnOriginX", "y": "rlnOriginY", "z": "rlnOriginZ"}  # RELION 3.0
POSITION_COLUMNS = (*PIXEL_COLUMNS.values(), *CENTRED_COLUMNS.values())
SUBTOMOGRAM_ANGLES = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
COORDINATE_COLUMNS = (*POSITION_COLUMNS, *ORIGIN_COLUMNS.values(), *PIXEL_ORIGIN_COLUMNS.values())
ANGLE_COLUMNS = {ROT: "rlnAngleRot", TILT: "rlnAngleTilt", PSI: "rlnAnglePsi"}
TOMO_COLUMN = "rlnTomoName"
PARTICLE_NAME = "rlnTomoParticleName"  # RELION 5's name of a particle: TS_01/7
PARTICLE_ID, HALF_SET = "rlnTomoParticleId", "rlnRandomSubset"
TILT_SERIES_PIXEL = "rlnTomoTiltSeriesPixelSize"  # optics: the pixel of RELION 4 tomo coordinates
CARRIED_BLOCKS = ("general", "optics")  # written again before the particles read with them
MISSING = "nan"  # a value a particle lacks, as RELION's number parser reads one (not "<NA>")
# each particle's own extracted files: a column any particle lacks is left out of a file, as
# RELION would read "nan" as a file name (the particles are to be extracted again)
EXTRACTED_FILES = ("rlnImageName", "rlnCtfImage")
# RELION's integer labels, written as integers even where a hand pick lacks a value
INTEGER_COLUMNS = (
    "rlnClassNumber",
    "rlnRandomSubset",
    "rlnGroupNumber",
    "rlnOpticsGroup",
    "rlnHelicalTubeID",
    "rlnTomoParticleId",
    "rlnTomoManifoldIndex",
)


def read_star(path: Path, frame: CoordinateFrame, tomo_name: str | None) -> pd.DataFrame:
    """Read the particle block of a STAR file into z, y, x voxel columns plus the other columns;
    ``rlnOrigin*Angst`` shifts are applied as RELION applies them (:func:`origin_shifts`)."""
    blocks = read_blocks(path, [TOMO_COLUMN])
    name = particle_block_name(path, blocks)
    block = select_tomogram(
        path, blocks[name].reset_index(drop=True), blocks[name].get(TOMO_COLUMN), tomo_name
    )
    shift = origin_shifts(path, block)
    origin, binning = None, None  # where Angstrom count from; the binning given, if used
    if all(c in block for c in CENTRED_COLUMNS.values()):
        coords = _centred_to_voxels(path, block, frame, shift)
        origin = tuple(np.asarray(frame.shape, dtype=float) / 2)
    elif fractional(path, block):
        coords = _pixels_to_voxels(path, block, _fraction_scale(path, frame.shape), frame, shift)
    else:
        scale = pixel_scale(path, blocks.get("optics"), block, frame.voxel_size, _given(frame))
        coords = _pixels_to_voxels(path, block, np.reshape(scale, (-1, 1)), frame, shift)
        if gives_pixel_size(path, blocks.get("optics"), block):
            origin = (0.0, 0.0, 0.0)
        elif frame.pixel_size is not None:
            binning = 1 / frame.voxels_per_pixel
    block = block.drop(columns=list(COORDINATE_COLUMNS), errors="ignore")
    particles = pd.concat([coords, from_star(block)], axis=1)
    others = carried_blocks(blocks)
    if others:
        particles.attrs[STAR_BLOCKS] = plain_blocks(others)
    if origin is not None:
        particles.attrs[ANGSTROM_ORIGIN] = origin
    if binning is not None:
        particles.attrs[COORDINATE_BINNING] = binning
    return particles


def origin_shifts(path: Path, block: pd.DataFrame) -> np.ndarray:
    """Each particle's ``rlnOrigin*Angst`` shift (x, y, z; 0 where absent) turned by its
    ``rlnTomoSubtomogram`` rotation, as RELION subtracts it from the position."""
    shift = np.column_stack(
        [
            numeric_column(path, block, c).fillna(0) if c in block else np.zeros(len(block))
            for c in (ORIGIN_COLUMNS[a] for a in "xyz")
        ]
    )
    if all(c in block for c in SUBTOMOGRAM_ANGLES) and len(block):
        angles = numeric_columns(path, block, list(SUBTOMOGRAM_ANGLES))
        shift = Rotation.from_euler("ZYZ", angles, degrees=True).apply(shift, inverse=True)
    return shift


def from_star(block: pd.DataFrame) -> pd.DataFrame:
    """A STAR block's non-coordinate columns with the program's names (``tomo_name``, angles)."""
    renames = {v: k for k, v in ANGLE_COLUMNS.items()} | {TOMO_COLUMN: TOMO_NAME}
    return block.rename(columns=renames)


def to_star(
    path: Path, particles: pd.DataFrame, coordinates: dict[str, np.ndarray]
) -> pd.DataFrame:
    """A STAR block for ``path``: ``rlnTomoName``, the ``coordinates`` columns given, RELION
    angles, then every other column of ``particles`` under its own name (spaces as ``_``), but
    for other RELION coordinate and origin columns (the ``coordinates`` replace them)."""
    particles = identified(particles)
    columns: dict[str, object] = {}
    if TOMO_NAME in particles:
        columns[TOMO_COLUMN] = particles[TOMO_NAME].astype(str).to_numpy()
    columns |= coordinates
    columns |= {  # a particle without angles (a hand pick) as an unaligned one: 0
        star: particles[name].fillna(0.0).to_numpy()
        for name, star in ANGLE_COLUMNS.items()
        if name in particles
    }
    extras = [
        c
        for c in particles
        if c not in (*AXES, TOMO_NAME, *ANGLE_COLUMNS, *COORDINATE_COLUMNS)  # stale positions
    ]
    others = particles[extras].reset_index(drop=True)
    others = others.drop(columns=unextracted_columns(others))
    frames = [c for c in SUBTOMOGRAM_ANGLES if c in others]
    others[frames] = others[frames].fillna(0.0)  # no subtomogram frame: the tomogram's
    for column in [c for c in INTEGER_COLUMNS if c in others]:  # 1, not 1.000000
        values = pd.to_numeric(others[column], errors="coerce")
        if (values.dropna() % 1 == 0).all():  # none: RELION reads no nan (no class, group: 0)
            others[column] = values.fillna(0).astype("Int64")
    labels = [re.sub(r"\s+", "_", str(c).strip()) for c in others.columns]  # one word each
    repeated = [c for c in dict.fromkeys(labels) if labels.count(c) > 1 or c in columns]
    if repeated:
        raise ParticleFileError(
            path, f"columns named alike would be one STAR label: {', '.join(repeated)}"
        )
    others.columns = labels
    return pd.concat([pd.DataFrame(columns), others], axis=1)


def unextracted_columns(particles: pd.DataFrame) -> list[str]:
    """The extracted-file columns (:data:`EXTRACTED_FILES`) some of ``particles`` lack."""
    return [c for c in EXTRACTED_FILES if c in particles and particles[c].isna().any()]


def identified(particles: pd.DataFrame) -> pd.DataFrame:
    """``particles`` with what RELION needs of each particle where one (a point added by hand)
    lacks it: a ``rlnTomoParticleName`` as RELION makes one (``TS_01/8``, after its tomogram's
    highest; RELION extracts each particle to a file of its name), a new ``rlnTomoParticleId``
    after the highest, the ``rlnRandomSubset`` half with fewer particles. Of the whole table,
    before part of it is written, so that no two particles share a name or an id."""
    table = particles
    if PARTICLE_NAME in table and table[PARTICLE_NAME].isna().any():
        tomograms = table[TOMO_NAME] if TOMO_NAME in table else pd.Series("", index=table.index)
        table = table.assign(**{PARTICLE_NAME: _named(table[PARTICLE_NAME], tomograms)})
    for column in (PARTICLE_ID, HALF_SET):
        if column in table and table[column].isna().any():
            values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
            table = table.assign(**{column: _filled(column, values)})
    return table


def _filled(column: str, values: np.ndarray) -> np.ndarray:
    """An id after the highest, or the half set with fewer particles, for each missing one."""
    missing = np.isnan(values)
    filled = values.copy()
    if column == PARTICLE_ID:
        highest = np.nanmax(values) if (~missing).any() else 0.0
        filled[missing] = highest + 1 + np.arange(missing.sum())
        return filled
    ones, twos = np.sum(values == 1), np.sum(values == 2)
    fewer = 2 if ones > twos else 1  # the emptier half first, until even; then 1, 2, 1, ...
    evening = min(int(missing.sum()), abs(int(ones) - int(twos)))
    turns = np.arange(missing.sum() - evening) % 2 + 1
    filled[missing] = np.concatenate([np.full(evening, fewer), turns])
    return filled


def _named(names: pd.Series, tomograms: pd.Series) -> np.ndarray:
    """``names`` with one for each particle without: its tomogram's, after the highest."""
    text = names.astype("string").reset_index(drop=True)
    ending = text.str.extract(r"(?:^|/)(\d+)$")[0]  # TS_01/7: 7
    numbers = pd.to_numeric(ending, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = np.flatnonzero(text.isna().to_numpy())
    owners = tomograms.astype(str).iloc[missing]
    prefixes = [f"{t}/" if t not in ("", "nan") else "" for t in owners]
    highest = {  # each tomogram's highest number, once
        prefix: np.nanmax(numbers[text.str.startswith(prefix).fillna(False)], initial=0)
        for prefix in set(prefixes)
    }
    named = names.astype(object).to_numpy(copy=True)
    for row, prefix in zip(missing, prefixes, strict=True):  # the hand picks alone
        highest[prefix] = int(np.nan_to_num(highest[prefix])) + 1
        named[row] = f"{prefix}{highest[prefix]}"
    return named


def write_star(
    path: Path,
    particles: pd.DataFrame,
    frame: CoordinateFrame,
    *,
    centred: bool = False,
    blocks: dict[str, pd.DataFrame | dict] | None = None,
) -> None:
    """Write RELION 4 pixel coordinates, or RELION 5 centred Angstrom ones if ``centred``, after
    the other ``blocks`` given (a source file's ``general`` and ``optics``), else those the
    particles were read with (``attrs``)."""
    blocks = _tables(particles.attrs.get(STAR_BLOCKS, {}) if blocks is None else blocks)
    if centred:
        if frame.voxel_size is None or frame.shape is None:
            raise ParticleFileError(
                path, "RELION 5 centred coordinates need the tomogram's shape and voxel size"
            )
        particles = in_optics_groups(path, particles, blocks.get("optics"))
        centre = dict(zip(AXES, np.asarray(frame.shape) / 2, strict=True))
        columns = {
            CENTRED_COLUMNS[axis]: np.asarray((particles[axis] - centre[axis]) * frame.voxel_size)
            for axis in ("x", "y", "z")
        }
        table = to_star(path, particles, columns)
    else:
        table = pixel_table(path, particles, blocks, frame.voxel_size, _given(frame))
    write_blocks_as_text(path, {**blocks, "particles": table})


UNWRITABLE = {"'": "a quote", '"': "a quote", "\t": "a tab", "\n": "a line break"}
UNWRITABLE["\r"] = UNWRITABLE["\n"]


def write_blocks_as_text(path: Path, blocks: dict[str, pd.DataFrame | dict]) -> None:
    """Write ``blocks`` as a STAR file that reads back as written: a text value beginning
    with ``#`` (else read as a comment) is quoted, and one holding a quote, a tab or a line
    break (which STAR readers take apart) is refused, naming its column and value."""
    starfile.write(
        {name: _quoted(path, block) for name, block in blocks.items()},
        path,
        overwrite=True,
        na_rep=MISSING,
    )


def _quoted(path: Path, block: pd.DataFrame | dict) -> pd.DataFrame | dict:
    """``block`` with its text values beginning with ``#`` quoted; one that cannot be written
    raises."""
    table = block if isinstance(block, pd.DataFrame) else pd.DataFrame([block])
    quoted = {}
    for column in table.columns:
        values = table[column]
        if not (is_object_dtype(values) or is_string_dtype(values)):
            continue  # numbers hold no quote and begin with no #
        text = values.dropna().astype(str)
        bad = text[text.str.contains("['\"\t\n\r]")]
        if len(bad):
            value = bad.iloc[0]
            found = next(what for mark, what in UNWRITABLE.items() if mark in value)
            raise ParticleFileError(
                path,
                f"{column} {value!r} holds {found}, which a STAR file cannot hold as written: "
                "rename it, or write CSV",
            )
        hashed = text[text.str.startswith("#")]
        if len(hashed):
            quoted[column] = values.where(~values.index.isin(hashed.index), '"' + hashed + '"')
    if not quoted:
        return block
    table = table.assign(**quoted)
    return table if isinstance(block, pd.DataFrame) else table.iloc[0].to_dict()


def pixel_table(
    path: Path,
    particles: pd.DataFrame,
    blocks: dict[str, pd.DataFrame | dict],
    voxel_sizes: float | np.ndarray | None,
    given: float | None = None,
) -> pd.DataFrame:
    """The RELION 4 particle block of ``particles``: coordinates in the pixels the ``blocks``'
    optics give (:func:`pixel_scale`; ``voxel_sizes``: the tomograms', one or one per particle),
    each particle in an optics group."""
    particles = in_optics_groups(path, particles, blocks.get("optics"))
    scale = pixel_scale(path, blocks.get("optics"), particles, voxel_sizes, given)
    columns = {PIXEL_COLUMNS[axis]: np.asarray(particles[axis] / scale) for axis in ("x", "y", "z")}
    return to_star(path, particles, columns)


def in_optics_groups(
    path: Path, particles: pd.DataFrame, optics: pd.DataFrame | dict | None
) -> pd.DataFrame:
    """``particles`` each in an optics group, as RELION looks every particle's up: one without
    (a point added by hand where its tomogram's other particles give none) joins the group the
    others share, or the one data_optics has."""
    if optics is None or OPTICS_GROUP not in particles:
        return particles
    missing = particles[OPTICS_GROUP].isna()
    if not missing.any():
        return particles
    table = _optics_table(optics)
    known = particles.loc[~missing, OPTICS_GROUP].unique()
    choices = known if len(known) else table.get(OPTICS_GROUP, pd.Series()).unique()
    if len(choices) != 1:
        row = int(np.flatnonzero(missing.to_numpy())[0])
        where = f" in {particles[TOMO_NAME].iloc[row]}" if TOMO_NAME in particles else ""
        raise ParticleFileError(
            path,
            f"particle {row + 1} (added by hand{where}?) has no {OPTICS_GROUP}, and the others "
            f"are of {len(choices)} groups: export it as CSV, or leave it out",
        )
    return particles.assign(**{OPTICS_GROUP: particles[OPTICS_GROUP].fillna(choices[0])})


def carried_blocks(blocks: dict[str, pd.DataFrame | dict]) -> dict[str, pd.DataFrame | dict]:
    """The blocks a STAR file of particles is written with again: ``general`` and ``optics``."""
    return {name: blocks[name] for name in CARRIED_BLOCKS if name in blocks}


def plain_blocks(blocks: dict[str, pd.DataFrame | dict]) -> dict[str, dict]:
    """STAR blocks as plain data (a table as a dict of column lists), to travel in attrs and
    layer metadata, where pandas and napari compare them."""
    return {
        name: block.to_dict(orient="list") if isinstance(block, pd.DataFrame) else dict(block)
        for name, block in blocks.items()
    }


def _tables(blocks: dict[str, pd.DataFrame | dict]) -> dict[str, pd.DataFrame | dict]:
    """Blocks as starfile writes them: a dict of lists (:func:`plain_blocks`' table) as a table."""
    return {name: _table(block) for name, block in blocks.items()}


def _table(block: pd.DataFrame | dict) -> pd.DataFrame | dict:
    listed = isinstance(block, dict) and all(isinstance(v, list) for v in block.values())
    return pd.DataFrame(block) if listed and block else block


def tomogram_names(path: Path) -> list[str]:
    """Distinct ``rlnTomoName`` values of the particle block, in file order."""
    block = _particle_block(path)
    return named_tomograms(block[TOMO_COLUMN]) if TOMO_COLUMN in block else []


def read_blocks(path: Path, as_text: list[str]) -> dict[str, pd.DataFrame | dict]:
    """Every block of a STAR file, the ``as_text`` columns and the explorer's class names and
    labels as text (a block of one particle or
    tomogram written without ``loop_`` as a table of one row). A table of particles that
    names no ``rlnTomoName`` but ``rlnMicrographName`` (Warp, pytom-match-pick) gets the
    micrograph's file stem as its tomogram's name. A block naming a column twice, or a block
    name repeated (files joined), is an error."""
    _check_text(path)
    try:
        blocks = starfile.read(
            path,
            always_dict=True,
            parse_as_string=[*as_text, MICROGRAPH_COLUMN, CLASS_NAME, LABEL],
        )
    except Exception as err:  # starfile raises many types for malformed text
        raise ParticleFileError(path, f"not a readable STAR file ({err})") from None
    for name, block in list(blocks.items()):
        if isinstance(block, dict) and any(c in block for c in (*POSITION_COLUMNS, TOMO_COLUMN)):
            block = blocks[name] = pd.DataFrame([block])  # one particle or tomogram, no loop_
        repeated = [] if isinstance(block, dict) else block.columns[block.columns.duplicated()]
        if len(repeated):
            raise ParticleFileError(
                path, f"data_{name} names column(s) {', '.join(dict.fromkeys(repeated))} twice"
            )
        named = isinstance(block, pd.DataFrame) and MICROGRAPH_COLUMN in block
        if named and TOMO_COLUMN not in block and PIXEL_COLUMNS["x"] in block:
            names = block[MICROGRAPH_COLUMN].astype(str)  # each file name's stem found once
            block.insert(0, TOMO_COLUMN, names.map({n: _file_stem(n) for n in names.unique()}))
    return blocks


def _file_stem(name: str) -> str:
    """``TS_01`` of ``TS_01.tomostar``, ``tomograms/TS_01.mrc`` or ``C:\\data\\TS_01.mrc``."""
    return PurePosixPath(name.strip().replace("\\", "/")).stem


def _check_text(path: Path) -> None:
    """Refuse a STAR file that is not UTF-8 text (the reader would find no block in it, and
    say nothing of why), or that names a block twice: only the last would be read."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ParticleFileError(path, f"cannot be read ({err.strerror or err})") from None
    try:
        if not data.isascii():  # a second copy of the text only where it may not be UTF-8
            data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ParticleFileError(
            path,
            f"is not UTF-8 text: line {line} holds byte 0x{data[err.start]:02x} (an accented "
            "letter saved as Latin-1?); save the file as UTF-8",
        ) from None
    names = re.findall(rb"^data_(\S*)", data, flags=re.MULTILINE)
    repeated = [n.decode(errors="replace") for n, k in Counter(names).items() if k > 1]
    if repeated:
        raise ParticleFileError(
            path,
            f"names block(s) {', '.join(f'data_{n}' for n in repeated)} more than once (files "
            "joined?): only the last of each would be read; keep one file per block name",
        )


def star_layout(path: Path) -> tuple[bool, dict[str, pd.DataFrame | dict]]:
    """Whether a particle STAR file counts RELION 5 centred Angstrom, and its other blocks
    (``general``, ``optics``), for writing particles back in the layout they came in."""
    blocks = read_blocks(path, [TOMO_COLUMN])
    name = particle_block_name(path, blocks)
    return all(c in blocks[name] for c in CENTRED_COLUMNS.values()), carried_blocks(blocks)


def _particle_block(path: Path) -> pd.DataFrame:
    blocks = read_blocks(path, [TOMO_COLUMN])
    return blocks[particle_block_name(path, blocks)].reset_index(drop=True)


def particle_block_name(path: Path, blocks: dict[str, pd.DataFrame | dict]) -> str:
    """The block holding the particles: ``data_particles``, else the one table of coordinates;
    several such tables, none of them ``data_particles``, are refused rather than one taken."""
    tables = {name: b for name, b in blocks.items() if isinstance(b, pd.DataFrame)}
    placed = [n for n, b in tables.items() if any(c in b for c in POSITION_COLUMNS)]
    if "particles" in placed or len(placed) == 1:
        return "particles" if "particles" in placed else placed[0]
    if placed:
        listed = ", ".join(f"data_{n} ({len(tables[n])} rows)" for n in placed)
        raise ParticleFileError(
            path, f"holds coordinates in {len(placed)} blocks ({listed}); keep the one to read"
        )
    found = ", ".join(f"data_{n}" for n in tables) or "no table"
    raise ParticleFileError(
        path,
        "no coordinate columns: expected rlnCoordinateX/Y/Z (RELION 3.1/4) or "
        f"rlnCenteredCoordinateX/Y/ZAngst (RELION 5); found {found}",
    )


def _given(frame: CoordinateFrame) -> float | None:
    """The tomogram voxels in one pixel the user gave (a binning), None if not given."""
    return frame.voxels_per_pixel if frame.pixel_size is not None else None


def pixel_scale(
    path: Path,
    optics: pd.DataFrame | dict | None,
    particles: pd.DataFrame,
    voxel_sizes: float | np.ndarray | None,
    given: float | None = None,
) -> float | np.ndarray:
    """Tomogram voxels in one pixel of each particle's coordinates: the tilt-series pixel of its
    optics group (RELION 4 tomography) over its tomogram's voxel size (``voxel_sizes``: one, or
    one per particle, NaN where unknown), else ``given`` (the user's binning), else 1. A
    ``given`` scale the file's pixel size contradicts is an error."""
    pixels = _tilt_series_pixels(path, optics, particles)
    if pixels is None:
        return 1.0 if given is None else given
    if voxel_sizes is None:
        raise ParticleFileError(
            path,
            f"counts coordinates in tilt-series pixels of {_sizes(pixels)} A ({TILT_SERIES_PIXEL})"
            "; they need the tomogram's voxel size: open the tomogram first (and set its voxel "
            "size if its header has none), or give its size",
        )
    scale = pixels / np.asarray(voxel_sizes, dtype=float)
    if given is not None and not np.allclose(scale[np.isfinite(scale)], given, rtol=1e-3):
        raise ParticleFileError(
            path,
            f"its {TILT_SERIES_PIXEL} ({_sizes(pixels)} A) puts {_sizes(1 / scale)} pixels in a "
            f"tomogram voxel, the binning given {1 / given:g}: leave the binning at 1 for a file "
            "that gives its pixel size",
        )
    return np.where(np.isfinite(scale), scale, 1.0 if given is None else given)


def gives_pixel_size(
    path: Path, optics: pd.DataFrame | dict | None, particles: pd.DataFrame
) -> bool:
    """Whether a STAR file's optics give the size of its particles' coordinate pixels."""
    return _tilt_series_pixels(path, optics, particles) is not None


def _tilt_series_pixels(
    path: Path, optics: pd.DataFrame | dict | None, particles: pd.DataFrame
) -> np.ndarray | None:
    """Each particle's ``rlnTomoTiltSeriesPixelSize`` through its ``rlnOpticsGroup`` (one size
    for all when the optics groups agree), or None when the file gives none."""
    table = _optics_table(optics)
    if table is None or TILT_SERIES_PIXEL not in table or table.empty:
        return None
    sizes = numeric_column(path, table, TILT_SERIES_PIXEL)
    if sizes.isna().any() or (sizes <= 0).any():
        raise ParticleFileError(path, f"data_optics has a {TILT_SERIES_PIXEL} that is not > 0")
    if OPTICS_GROUP in table and OPTICS_GROUP in particles:
        by_group = dict(zip(numeric_column(path, table, OPTICS_GROUP), sizes, strict=True))
        groups = numeric_column(path, particles, OPTICS_GROUP)
        pixels = groups.map(by_group)
        unknown = pixels.isna() & groups.notna()  # a point added by hand joins one later
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise ParticleFileError(
                path, f"particle {row + 1}'s {OPTICS_GROUP} is not one of data_optics"
            )
    if sizes.nunique() == 1:
        return np.full(len(particles), sizes.iloc[0])
    if OPTICS_GROUP not in table or OPTICS_GROUP not in particles:
        raise ParticleFileError(
            path, f"optics groups of {_sizes(sizes)} A pixels, and no {OPTICS_GROUP} to tell apart"
        )
    if pixels.isna().any():
        row = int(np.flatnonzero(pixels.isna().to_numpy())[0])
        raise ParticleFileError(path, f"particle {row + 1} has no {OPTICS_GROUP}")
    return pixels.to_numpy()


def _optics_table(optics: pd.DataFrame | dict | None) -> pd.DataFrame | None:
    """A data_optics block as a table (starfile gives a block of one row without loop_ as a
    dict)."""
    return pd.DataFrame([optics]) if isinstance(optics, dict) else optics


def _sizes(pixels: np.ndarray | pd.Series) -> str:
    return " and ".join(f"{v:g}" for v in dict.fromkeys(np.asarray(pixels, dtype=float)))


def fractional(path: Path, block: pd.DataFrame) -> bool:
    """Whether ``block``'s ``rlnCoordinate*`` are fractions of the tomogram's size (WarpTools 2
    template matching): every one within 0 to 1 and some between, which no particle file in
    pixels holds (all its particles within a voxel of the corner)."""
    if len(block) == 0 or not all(c in block for c in PIXEL_COLUMNS.values()):
        return False
    xyz = numeric_columns(path, block, list(PIXEL_COLUMNS.values()))
    xyz = xyz[np.isfinite(xyz).all(axis=1)]  # a row without coordinates tells nothing
    return bool(len(xyz) and ((xyz >= 0) & (xyz <= 1)).all() and ((xyz > 0) & (xyz < 1)).any())


def _fraction_scale(path: Path, shape: tuple[int, int, int] | None) -> np.ndarray:
    """The voxels (x, y, z) in a whole of fractional coordinates: the tomogram's size."""
    if shape is None:
        raise ParticleFileError(
            path,
            "holds WarpTools coordinates, fractions of the tomogram's size; they need the "
            "tomogram: open it first",
        )
    return np.asarray(shape[::-1], dtype=float).reshape(1, 3)


def _pixels_to_voxels(
    path: Path,
    block: pd.DataFrame,
    scale: np.ndarray,
    frame: CoordinateFrame,
    shift: np.ndarray,
) -> pd.DataFrame:
    """z, y, x voxels of ``block``'s pixel coordinates less their RELION 3.0 ``rlnOrigin*``
    (pixels), times ``scale`` (voxels in a pixel: one, one per particle (n, 1), or one per axis
    x, y, z (1, 3)), less the origin ``shift`` (Angstrom)."""
    missing = [c for c in PIXEL_COLUMNS.values() if c not in block]
    if missing:
        raise ParticleFileError(path, f"missing coordinate column(s) {', '.join(missing)}")
    xyz = pixel_coordinates(path, block) * scale
    if shift.any():
        if frame.voxel_size is None:
            raise ParticleFileError(
                path, "has rlnOrigin*Angst shifts; they need the tomogram's voxel size"
            )
        xyz -= shift / frame.voxel_size
    return pd.DataFrame(xyz[:, ::-1], columns=list(AXES))


def pixel_coordinates(path: Path, block: pd.DataFrame) -> np.ndarray:
    """``block``'s x, y, z pixel coordinates (n, 3), less their RELION 3.0 ``rlnOrigin*``
    (in the same pixels; 0 where absent)."""
    xyz = numeric_columns(path, block, [PIXEL_COLUMNS[a] for a in "xyz"])
    for i, axis in enumerate("xyz"):
        if PIXEL_ORIGIN_COLUMNS[axis] in block:
            xyz[:, i] -= numeric_column(path, block, PIXEL_ORIGIN_COLUMNS[axis]).fillna(0)
    return xyz


def _centred_to_voxels(
    path: Path, block: pd.DataFrame, frame: CoordinateFrame, shift: np.ndarray
) -> pd.DataFrame:
    if frame.voxel_size is None or frame.shape is None:
        raise ParticleFileError(
            path,
            "RELION 5 centred coordinates (Angstrom from the tomogram centre) need the "
            "tomogram's shape and voxel size: open the tomogram first, and set its voxel size "
            "if its header has none",
        )
    xyz = numeric_columns(path, block, [CENTRED_COLUMNS[a] for a in "xyz"]) - shift
    voxels = xyz[:, ::-1] / frame.voxel_size + np.asarray(frame.shape, dtype=float) / 2
    return pd.DataFrame(voxels, columns=list(AXES))
