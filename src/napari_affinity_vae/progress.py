"""The progress-bar protocol long steps accept: ``tqdm`` on the command line, napari's ``progress``
in the GUI, called as ``progress(iterable, desc=..., total=...)`` or ``progress(total=...)``."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

Progress = Callable[..., Iterable]

Result = TypeVar("Result")


def run_steps(
    steps: Generator[int, None, Result], total: int, desc: str, progress: Progress | None
) -> Result:
    """Run a generator that yields how many of ``total`` units are done, to its return value,
    showing an optional progress bar, which closes however the run ends."""
    bar = progress(total=total, desc=desc) if progress else None
    done = 0
    try:
        while True:
            try:
                now = next(steps)
            except StopIteration as finished:
                return finished.value
            if bar is not None:
                bar.update(now - done)
            done = now
    finally:  # closed whether the steps finish, fail or are interrupted
        if bar is not None:
            bar.close()


def pauses(stages: Generator[None, None, Result], done: int) -> Generator[int, None, Result]:
    """Run ``stages`` (a generator that yields at each pause), yielding ``done`` at every pause:
    a chance to cancel without progress; return its result."""
    while True:
        try:
            next(stages)
        except StopIteration as finished:
            return finished.value
        yield done
