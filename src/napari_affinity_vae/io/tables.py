"""Plain-text coordinate tables: Dynamo ``.tbl``, TomoTwin ``.coords`` and CSV.

All hold x, y, z in voxels of the tomogram. Dynamo counts voxels from 1 (its corner voxel is
V[1, 1, 1]); its positions are columns 24-26 plus the shifts in columns 4-6, and its zxz angles
(tdrot, tilt, narot) are converted to RELION's ZYZ (rot, tilt, psi). Column 20 is the tomogram
number, read as ``tomo_name`` (the integer as text, e.g. ``"3"``); a table of several tomograms
gives one tomogram's particles at a time.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.frame import CoordinateFrame
from napari_affinity_vae.io.orientation import particle_angles
from napari_affinity_vae.io.validate import named_tomograms, numeric_column, select_tomogram
from napari_affinity_vae.schema import ANGLES, AXES, CLUSTER, TEXT_COLUMNS, TOMO_NAME

DYNAMO_ORIGIN = 1.0  # Dynamo's coordinate of the first voxel
DYNAMO_COLUMNS = 35  # the standard table width; x, y, z are 1-based columns 24-26
CSV_FLOAT = "%.12g"  # a particle ID of 12 digits exact; a pixel's 1e-15 of float noise not
SAMPLE_CHARACTERS = 65_536  # of a CSV file read to tell its decimal separator
_DYNAMO = {
    "tag": 0,
    "dx": 3,
    "dy": 4,
    "dz": 5,
    "tdrot": 6,
    "tilt": 7,
    "narot": 8,
    "tomo": 19,
    "class": 21,
    "x": 23,
    "y": 24,
    "z": 25,
}
DYNAMO_NAMES = {  # Dynamo's other columns, kept as dynamo_<name> and written back where they were
    "aligned": 1,
    "averaged": 2,
    "cc": 9,
    "cc2": 10,
    "cpu": 11,
    "ftype": 12,
    "ymintilt": 13,
    "ymaxtilt": 14,
    "xmintilt": 15,
    "xmaxtilt": 16,
    "fs1": 17,
    "fs2": 18,
    "reg": 20,
    "class": 21,
    "annotation": 22,
    "dshift": 26,
    "daxis": 27,
    "dnarot": 28,
    "dcc": 29,
    "otag": 30,
    "npar": 31,
    "ref": 33,
    "sref": 34,
}
DYNAMO_PREFIX = "dynamo_"
NAPARI_AXES = ("axis-0", "axis-1", "axis-2")  # napari's points CSV: z, y, x of the layer's data
# the tomogram number a table gave particles placed on a tomogram of another name
DYNAMO_TOMOGRAM = f"{DYNAMO_PREFIX}tomo"


def read_dynamo(
    path: Path,
    frame: CoordinateFrame,
    tomo_name: str | None = None,
    *,
    every_tomogram: bool = False,
) -> pd.DataFrame:
    """The particles of a Dynamo table; ``tomo_name`` (a tomogram number) chooses one tomogram
    of a table holding several, which is otherwise an error unless ``every_tomogram``."""
    table = _read_numeric_text(
        path, min_columns=26, what="a Dynamo table needs at least 26 columns"
    )
    names = pd.Series(_tomogram_numbers(path, table), dtype=object)
    if tomo_name is not None and str(tomo_name).strip().isdigit():
        tomo_name = str(int(tomo_name))  # "03" is tomogram 3
    rows = pd.DataFrame({"row": np.arange(len(table))})
    table = table[select_tomogram(path, rows, names, tomo_name, every_tomogram)["row"].to_numpy()]
    col = {name: table[:, i] for name, i in _DYNAMO.items()}
    scale = frame.voxels_per_pixel
    out = pd.DataFrame({a: (col[a] + col[f"d{a}"] - DYNAMO_ORIGIN) * scale for a in AXES})
    out[list(ANGLES)] = dynamo_to_relion(np.column_stack([col["tdrot"], col["tilt"], col["narot"]]))
    out["tag"] = col["tag"].astype(int)
    out[TOMO_NAME] = _tomogram_numbers(path, table)
    kept = {
        f"{DYNAMO_PREFIX}{name}": table[:, i]
        for name, i in _other_columns(table.shape[1]).items()
        if name not in DYNAMO_NAMES or name in ("aligned", "averaged") or np.any(table[:, i] != 0)
    }
    return pd.concat([out, pd.DataFrame(kept)], axis=1)


def _other_columns(width: int) -> dict[str, int]:
    """Dynamo's columns not read into positions, angles, tag or tomogram (0-based), those past
    the standard 35 as ``col<N>`` (1-based)."""
    extra = {f"col{i + 1}": i for i in range(DYNAMO_COLUMNS, width)}
    return {n: i for n, i in DYNAMO_NAMES.items() if i < width} | extra


def dynamo_tomogram_names(path: Path) -> list[str]:
    """The distinct tomogram numbers (column 20) of a Dynamo table as text, in file order."""
    table = _read_numeric_text(
        path, min_columns=26, what="a Dynamo table needs at least 26 columns"
    )
    return list(dict.fromkeys(_tomogram_numbers(path, table)))


def write_dynamo(path: Path, particles: pd.DataFrame, frame: CoordinateFrame) -> None:
    """The standard 35 columns (more if a table read had more); column 20 (the tomogram number)
    as ``_tomogram_column`` gives it; a table's other columns read from Dynamo (``dynamo_cc``
    ...) go back where they were, but for the class (column 22), which clusters replace."""
    n = len(particles)
    extra = [
        int(c[len(DYNAMO_PREFIX) + 3 :]) for c in particles if c.startswith(f"{DYNAMO_PREFIX}col")
    ]
    table = np.zeros((n, max([DYNAMO_COLUMNS, *extra])))
    table[:, _DYNAMO["tag"]] = _tags(particles)
    table[:, 1:3] = 1  # aligned, averaged
    for name, i in _other_columns(table.shape[1]).items():
        if f"{DYNAMO_PREFIX}{name}" in particles:
            table[:, i] = particles[f"{DYNAMO_PREFIX}{name}"].fillna(0)
    if all(a in particles for a in ANGLES):
        angles = relion_to_dynamo(particle_angles(particles))
        table[:, _DYNAMO["tdrot"] : _DYNAMO["narot"] + 1] = angles
    table[:, _DYNAMO["tomo"]] = _tomogram_column(particles)
    if CLUSTER in particles:
        table[:, _DYNAMO["class"]] = particles[CLUSTER].fillna(0)
    for axis in ("x", "y", "z"):
        table[:, _DYNAMO[axis]] = particles[axis] / frame.voxels_per_pixel + DYNAMO_ORIGIN
    fmt = ["%d"] * 3 + ["%.4f"] * 6 + [CSV_FLOAT] * (table.shape[1] - 9)
    np.savetxt(path, table, fmt=fmt, delimiter=" ")


def _tags(particles: pd.DataFrame) -> np.ndarray:
    """Each particle's Dynamo tag: the one read with it, else (a pick added by hand) a new one
    after the highest. Without a column of integer tags (a table of another tool, whose tags may
    be names such as ``A1``) the particles are numbered from 1."""
    numbered = np.arange(1, len(particles) + 1)
    if "tag" not in particles:
        return numbered
    tags = pd.to_numeric(particles["tag"], errors="coerce").to_numpy(dtype=float, copy=True)
    missing = np.isnan(tags)
    if np.any(missing & particles["tag"].notna().to_numpy()) or np.any(tags[~missing] % 1):
        return numbered
    start = np.nanmax(tags, initial=0) + 1
    tags[missing] = np.arange(start, start + missing.sum())
    return tags


def _tomogram_numbers(path: Path, table: np.ndarray) -> list[str]:
    """Each row's tomogram number (column 20) as text; one that is not a number is an error."""
    numbers = table[:, _DYNAMO["tomo"]]
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise ParticleFileError(
            path,
            f"{int(bad.sum())} row(s) without a tomogram number in column 20 (first: row {row})",
        )
    return [str(int(v)) for v in numbers]


def placed_on(particles: pd.DataFrame, name: str) -> pd.DataFrame:
    """A Dynamo table's particles placed on tomogram ``name``: it names them, and the number
    the table gave them goes back into a Dynamo table (``dynamo_tomo``)."""
    return particles.assign(**{DYNAMO_TOMOGRAM: particles[TOMO_NAME], TOMO_NAME: name})


def _tomogram_column(particles: pd.DataFrame) -> np.ndarray:
    """Column 20: ``tomo_name`` where that is an integer, else the number a Dynamo table gave
    the particles (``dynamo_tomo``; a pick added by hand beside them shares theirs), else 1."""
    blank = pd.Series("", index=particles.index)
    names = particles.get(TOMO_NAME, blank).astype(str).str.strip()
    numbers = pd.to_numeric(names.where(names.str.isdigit()))
    read = pd.to_numeric(particles.get(DYNAMO_TOMOGRAM, blank), errors="coerce")
    if read.notna().any():
        numbers = numbers.fillna(read).fillna(read.dropna().iloc[0])
    return numbers.fillna(1).to_numpy(dtype=float)


def read_tomotwin(path: Path, frame: CoordinateFrame) -> pd.DataFrame:
    table = _read_numeric_text(path, min_columns=3, what="a .coords file needs x y z columns")
    scale = frame.voxels_per_pixel
    return pd.DataFrame(
        {"z": table[:, 2] * scale, "y": table[:, 1] * scale, "x": table[:, 0] * scale}
    )


def write_tomotwin(path: Path, particles: pd.DataFrame, frame: CoordinateFrame) -> None:
    xyz = particles[["x", "y", "z"]].to_numpy(dtype=float) / frame.voxels_per_pixel
    np.savetxt(path, xyz, fmt=CSV_FLOAT, delimiter=" ")


def read_csv(
    path: Path, frame: CoordinateFrame, tomo_name: str | None = None, *, every_tomogram=False
) -> pd.DataFrame:
    """x, y, z columns (any case, any order) and the others; of a table whose ``tomo_name``
    column names several tomograms (as ``avae embed`` writes a project), tomogram ``tomo_name``
    (else an error listing them, unless ``every_tomogram``). napari's own points files
    (``index``, ``axis-0`` to ``axis-2``: z, y, x of the layer's data, its voxels) are read
    too."""
    table = _read_csv_table(path)
    napari = list(table.columns[:4]) == ["index", *NAPARI_AXES]
    if napari and not {"x", "y", "z"} & {_plain(c) for c in table.columns}:
        axes = dict(zip(NAPARI_AXES, AXES, strict=True))
        table = table.drop(columns="index").rename(columns=axes)
    table = select_tomogram(path, table, _csv_tomo_names(table), tomo_name, every_tomogram)
    by_lower = {_plain(c): c for c in table.columns}
    for axis in ("x", "y", "z"):  # pandas reads a repeated x as x.1
        same = [str(c) for c in table.columns if re.fullmatch(rf"{axis}(\.\d+)?", _plain(c))]
        if len(same) > 1:
            raise ParticleFileError(
                path, f"{len(same)} columns could be {axis} ({', '.join(same)}); keep one"
            )
    missing = [a for a in ("x", "y", "z") if a not in by_lower]
    if missing:
        raise ParticleFileError(
            path,
            f"no coordinate columns: the header needs x, y and z (missing {', '.join(missing)}; "
            f"found {', '.join(map(str, table.columns)) or 'nothing'})",
        )
    scale = frame.voxels_per_pixel
    coords = pd.DataFrame({a: numeric_column(path, table, by_lower[a]) * scale for a in AXES})
    extras = table.drop(columns=[by_lower[a] for a in AXES])
    return pd.concat([coords, extras], axis=1)


def _plain(column: object) -> str:
    return str(column).strip().lower()


def csv_tomogram_names(path: Path) -> list[str]:
    """The distinct values of a CSV file's ``tomo_name`` column as text, in file order."""
    names = _csv_tomo_names(_read_csv_table(path))
    return [] if names is None else named_tomograms(names)


def row_tomograms(particles: pd.DataFrame) -> pd.Series:
    """Each row's tomogram as text, of particles read from a CSV file (its ``tomo_name``
    column, any case) or a Dynamo table (its tomogram numbers), as :func:`named_tomograms`
    lists them."""
    names = _csv_tomo_names(particles)
    return names.astype(str).str.strip() if names is not None else pd.Series("", particles.index)


def _csv_tomo_names(table: pd.DataFrame) -> pd.Series | None:
    """The ``tomo_name`` column (any case), None if there is none."""
    column = next((c for c in table.columns if _plain(c) == TOMO_NAME), None)
    return None if column is None else table[column]


def _read_csv_table(path: Path) -> pd.DataFrame:
    """A CSV file separated by commas, or by semicolons or tabs with decimal points or commas
    (as spreadsheets in some languages save them), its ``tomo_name``, ``class_name`` and
    ``label`` columns as text (``01`` stays ``01``, a label ``1`` does not become 1.0, ``NA`` or
    ``None`` stay names: only an empty cell is missing)."""
    try:
        encoding = _encoding(path)
        with path.open(encoding=encoding) as file:
            header, sample = file.readline(), file.read(SAMPLE_CHARACTERS)
        said = re.fullmatch(r"sep=(.)\s*", header)  # Excel's first line naming the separator
        if said:
            header = sample.split("\n", 1)[0]
        sep = said.group(1) if said else next((s for s in (",", ";", "\t") if s in header), ",")
        # commas between digits, and no point, in a file not separated by commas: decimal commas
        commas = re.search(r"\d,\d", sample) and not re.search(r"\d\.\d", sample)
        decimal = "," if sep != "," and commas else "."
        # index_col=False: a trailing separator on the rows is an empty field, not an index
        read = functools.partial(
            pd.read_csv,
            path,
            sep=sep,
            decimal=decimal,
            encoding=encoding,
            index_col=False,
            skiprows=1 if said else None,
        )
        columns = read(nrows=0).columns
        text = [i for i, c in enumerate(columns) if _plain(c) in TEXT_COLUMNS]
        table = read(dtype={columns[i]: str for i in text})
        if text:  # read again as written: pandas takes NA, None, null ... for missing values
            names = read(usecols=text, dtype=str, keep_default_na=False, na_values=[""])
            table[names.columns] = names
        return table
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ParticleFileError(path, f"not a readable CSV file ({err})") from None


def _encoding(path: Path) -> str:
    """How a CSV file's text is encoded: UTF-16 with its byte-order mark (Excel's "Unicode
    text"), else UTF-8 (with or without a mark), else Windows-1252, as Excel on Windows saves a
    CSV (Latin-1 where even that fails: every byte is a Latin-1 character)."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if data.isascii():  # most files: no decoding pass before pandas reads them
        return "utf-8-sig"
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            data.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def write_csv(path: Path, particles: pd.DataFrame, frame: CoordinateFrame) -> None:
    out = particles.copy()
    for axis in ("x", "y", "z"):
        out[axis] = particles[axis] / frame.voxels_per_pixel
    ordered = ["x", "y", "z", *(c for c in particles if c not in AXES)]
    out[ordered].to_csv(path, index=False, float_format=CSV_FLOAT)


def dynamo_to_relion(angles: np.ndarray) -> np.ndarray:
    """Dynamo (tdrot, tilt, narot: extrinsic zxz) to RELION (rot, tilt, psi: intrinsic ZYZ).

    Both describe the same passive rotation, so rot = narot - 90, tilt = tilt, psi = tdrot + 90.
    """
    return _convert_euler(angles, "zxz", "ZYZ")


def relion_to_dynamo(angles: np.ndarray) -> np.ndarray:
    """Inverse of :func:`dynamo_to_relion`."""
    return _convert_euler(angles, "ZYZ", "zxz")


def _convert_euler(angles: np.ndarray, source: str, target: str) -> np.ndarray:
    """The same rotation's Euler angles (degrees) in another convention."""
    if len(angles) == 0:
        return np.zeros((0, 3))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Gimbal lock", UserWarning)  # any valid triplet will do
        rotation = Rotation.from_euler(source, angles, degrees=True)
        return rotation.as_euler(target, degrees=True)


def _read_numeric_text(path: Path, *, min_columns: int, what: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "loadtxt: input contained no data", UserWarning)
            table = np.loadtxt(path, ndmin=2, dtype=float, encoding="utf-8-sig")
    except ValueError as err:
        raise ParticleFileError(path, f"non-numeric or ragged values ({err})") from None
    if table.size == 0:
        return np.zeros((0, min_columns))
    if table.shape[1] < min_columns:
        raise ParticleFileError(path, f"{what}; found {table.shape[1]}")
    return table
