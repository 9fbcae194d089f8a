"""Atomic file writes: a temporary file beside the target, renamed over it when complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from napari_affinity_vae.errors import InputFileError


def check_writable(path: str | Path, error: type[InputFileError] = InputFileError) -> None:
    """Refuse, before any work, an output where a folder stands, or in a folder that does not
    exist or cannot be written to (raising ``error`` naming ``path``)."""
    path = Path(path)
    if not path.parent.is_dir():
        blocking = next((p for p in path.parents if p.exists()), None)
        if blocking is not None and not blocking.is_dir():  # where a folder would have to be
            raise error(path, f"{blocking} is a file, not a folder")
        raise error(path, f"folder {path.parent} does not exist")
    if path.is_dir():
        raise error(path, "is a folder: give a file name")
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        raise unwritable(path, err, error) from None


def unwritable(
    path: str | Path, err: OSError, error: type[InputFileError] = InputFileError
) -> InputFileError:
    """The error to raise for ``path`` that could not be written (a full disk, a folder made
    read-only meanwhile): ``error`` naming it and the system's reason."""
    return error(path, f"cannot be written ({err.strerror or err})")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    A failure inside the block removes the temporary file and leaves an existing ``path`` as it was.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent or "."
    )
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes it private; the result is an ordinary file
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_files(folder: str | Path, names: list[str]) -> Iterator[list[Path]]:
    """Yield temporary paths for files ``names`` of ``folder``, in a hidden folder beside them;
    move them all into ``folder`` only if the block succeeds: all are written, or none."""
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
    try:
        yield [staging / name for name in names]
        for name in names:
            os.replace(staging / name, Path(folder) / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
