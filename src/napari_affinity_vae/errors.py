"""Exceptions for problems a user can cause, each naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path


class AffinityVAEError(Exception):
    """Base class for errors caused by the user's input rather than by a bug."""


class InputFileError(AffinityVAEError, ValueError):
    """A file the user gave cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TomogramFileError(InputFileError):
    """A tomogram file is unreadable, truncated, not 3D, or lacks what is needed."""


class NonCubicVoxelsError(TomogramFileError):
    """A tomogram's header gives voxels of different sizes along its axes (``sizes``, z, y, x
    Angstrom, as text); a voxel size given by the user opens it."""

    def __init__(self, path: str | Path, sizes: str) -> None:
        self.sizes = sizes
        super().__init__(
            path,
            f"the header's voxels of {sizes} Å (z, y, x) are not cubic; give the voxel size to "
            "use, resample to cubic voxels, or correct the header if it is wrong",
        )


class ParticleFileError(InputFileError):
    """A coordinate file is unreadable or its particles do not fit the tomogram."""


class UnusableRowsError(ParticleFileError):
    """Rows of a coordinate file with NaN coordinates or outside the tomogram, which the user
    may choose to skip."""


class OutputExistsError(AffinityVAEError):
    """An output file or folder exists and the user did not ask to replace it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} exists; pass --overwrite to replace it")


class AnalysisError(AffinityVAEError, ValueError):
    """A clustering, projection or explanation cannot be made of these particles (too few of
    them, or a selection of all or none); the message says why."""


class TrainingError(AffinityVAEError, ValueError):
    """Training cannot go on (its loss is no longer a finite number, or a resumed run would
    hold out other boxes); the message says when and what to check."""


class SaveError(AffinityVAEError):
    """A layer napari was asked to save could not be written. Not a ValueError: napari takes a
    writer's ValueError for "not my format" and shows its own message instead."""
