"""IMOD model files (``.mod``): points picked in 3dmod, read and written with ``imodmodel``.

3dmod puts model x and y at the corner of the first pixel (its centre is at 0.5) and z at the
centre of the first section (IMOD's binary format: x runs from 0 to NX, z from -0.5 to NZ - 0.5),
so voxel (z, y, x) is model point (x + 0.5, y + 0.5, z). A point's
object and contour, numbered from 1 as 3dmod shows them, are the ``imod_object`` and
``imod_contour`` columns, and are written back so. A model holds no orientation.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from imodmodel.models import Contour, ImodModel, Object

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.frame import CoordinateFrame

ORIGIN = {"x": 0.5, "y": 0.5, "z": 0.0}  # the model coordinate of voxel 0's centre
OBJECT, CONTOUR = "imod_object", "imod_contour"


def read_imod(path: Path, frame: CoordinateFrame) -> pd.DataFrame:
    """The points of every object and contour of an IMOD model, in tomogram voxels."""
    model = _read_model(path)
    points = [
        (number, contour_number, *point)
        for number, obj in enumerate(model.objects, start=1)
        for contour_number, contour in enumerate(obj.contours, start=1)
        for point in np.asarray(contour.points, dtype=float).reshape(-1, 3)
    ]
    table = np.array(points, dtype=float).reshape(-1, 5)
    _check_size(path, model, frame)
    scale = frame.voxels_per_pixel
    coords = {a: (table[:, 2 + i] - ORIGIN[a]) * scale for i, a in enumerate("xyz")}
    particles = pd.DataFrame({a: coords[a] for a in ("z", "y", "x")})
    particles[OBJECT] = table[:, 0].astype(int)
    particles[CONTOUR] = table[:, 1].astype(int)
    return particles


def _read_model(path: Path) -> ImodModel:
    with path.open("rb") as file:
        if file.read(4) != b"IMOD":
            raise ParticleFileError(path, "not an IMOD model (its first bytes are not IMOD)")
    try:
        return ImodModel.from_file(path)
    except Exception as err:  # the parser raises anything on a damaged file
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ParticleFileError(path, f"a truncated or damaged IMOD model ({problem})") from None


def _check_size(path: Path, model: ImodModel, frame: CoordinateFrame) -> None:
    """Warn where the model was made on an image of another size than the tomogram's (another
    binning: its points would land elsewhere unless the coordinates' pixel size is given)."""
    header = model.header
    made_on = (header.zmax, header.ymax, header.xmax)
    if frame.shape is None or frame.pixel_size is not None or not all(made_on):
        return
    if tuple(made_on) != tuple(frame.shape):
        size = " x ".join(map(str, made_on[::-1]))
        warnings.warn(
            f"{path}: the model was made on an image of {size} voxels (x, y, z), the tomogram is "
            f"{' x '.join(map(str, frame.shape[::-1]))}: if it was binned otherwise, give the "
            "coordinates' pixel size (the binning)",
            stacklevel=4,
        )


def write_imod(path: Path, particles: pd.DataFrame, frame: CoordinateFrame) -> None:
    """Scattered points, in object ``imod_object`` (else 1) and its contour ``imod_contour``
    (else 1), objects and contours numbered as read; the tomogram's size in the header, as 3dmod
    writes it."""
    scale = frame.voxels_per_pixel
    xyz = np.column_stack([particles[a].to_numpy(float) / scale + ORIGIN[a] for a in "xyz"])
    number = {c: _numbers(particles, c) for c in (OBJECT, CONTOUR)}
    model = ImodModel()
    for obj in range(1, max(number[OBJECT], default=0) + 1):
        of_object = number[OBJECT] == obj
        contours = [
            Contour(points=xyz[of_object & (number[CONTOUR] == contour)].reshape(-1, 3))
            for contour in range(1, max(number[CONTOUR][of_object], default=0) + 1)
        ]
        model.objects.append(Object(contours=contours))
        model.objects[-1].header.flags.scattered = True
        model.objects[-1].update_sizes()
    model.update_sizes()
    model.header.flags.z_coordinates_start_from_negative_half = True  # as 3dmod marks its own
    if frame.shape is not None:
        z, y, x = (round(n / scale) for n in frame.shape)
        model.header.xmax, model.header.ymax, model.header.zmax = x, y, z
    model.to_file(path)


def _numbers(particles: pd.DataFrame, column: str) -> np.ndarray:
    """The object or contour numbers of ``column`` (1 where none is given, or not a positive
    whole number)."""
    if column not in particles:
        return np.ones(len(particles), dtype=int)
    numbers = pd.to_numeric(particles[column], errors="coerce")
    whole = (numbers >= 1) & (numbers % 1 == 0)
    return numbers.where(whole, 1).to_numpy(dtype=int)
