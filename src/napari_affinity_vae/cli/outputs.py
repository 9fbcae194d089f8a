"""What the commands write: outputs refused before any work, and kept or removed when a run
stops."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from napari_affinity_vae.errors import (
    AffinityVAEError,
    OutputExistsError,
)

if TYPE_CHECKING:
    pass


def mrc_output(text: str) -> Path:
    """An output path for an MRC file: its suffix must say so."""
    path = Path(text)
    if path.suffix.lower() != ".mrc":
        raise argparse.ArgumentTypeError(f"an MRC file is written: give a .mrc path, got {text}")
    return path


def add_overwrite(
    command: argparse.ArgumentParser, text: str = "replace an existing --out"
) -> None:
    command.add_argument("--overwrite", action="store_true", help=text)


def refuse_existing(args: argparse.Namespace, *paths: Path | None) -> None:
    """Outputs are never replaced unless ``--overwrite`` says so, each must be writable, and
    no file may be two of them (the last written would replace the first): refused before any
    work, not after it."""
    from napari_affinity_vae.io.atomic import check_writable

    given = [p for p in paths if p is not None]
    resolved = [p.resolve() for p in given]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise AffinityVAEError(f"{given[i]} is given as two outputs: give each its own file")
    for path in given:
        if path.exists() and not path.is_dir() and not args.overwrite:
            raise OutputExistsError(path)
        check_writable(path)


class Cancelled(KeyboardInterrupt):
    """A run cancelled with Ctrl-C that keeps what it wrote so far, saying what."""


@contextlib.contextmanager
def keeping_or_removing(outputs: list[Path], resumable: str):
    """On Ctrl-C or an error: the ``outputs`` a run has written are kept where a checkpoint
    among them (the file ending ``resumable``) lets it go on; otherwise those it made are
    removed. Either is said."""
    before = {p: p.stat().st_mtime_ns for p in outputs if p.exists()}
    try:
        yield
    except (KeyboardInterrupt, AffinityVAEError) as stopped:
        written = [p for p in outputs if p.exists() and before.get(p) != p.stat().st_mtime_ns]
        checkpoint = next((p for p in written if p.name.endswith(resumable)), None)
        if checkpoint is not None:
            kept = ", ".join(p.name for p in written)
            note = f"kept {kept} (--resume {checkpoint} goes on from there)"
        else:
            for path in (p for p in written if p not in before):
                path.unlink(missing_ok=True)
            rewritten = [p.name for p in written if p in before]
            note = f"{', '.join(rewritten)} rewritten in part" if rewritten else None
        if note is None:
            raise
        if isinstance(stopped, KeyboardInterrupt):
            raise Cancelled(note) from None
        stopped.add_note(note)
        raise
