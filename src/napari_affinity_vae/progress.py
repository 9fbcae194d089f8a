"""The progress-bar protocol long steps accept: ``tqdm`` on the command line, napari's ``progress``
in the GUI, called as ``progress(iterable, desc=..., total=...)`` or ``progress(total=...)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

Progress = Callable[..., Iterable]
