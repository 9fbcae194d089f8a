"""One path for errors in the dock widgets: a napari notification of one sentence, shown once;
the traceback of anything that is not the user's doing goes to the log."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from napari.utils.notifications import show_error, show_warning

from napari_affinity_vae.errors import AffinityVAEError

log = logging.getLogger(__name__)
NAME_MAX = 255  # bytes of one file or folder name, on Linux, macOS and Windows file systems


def failure_message(error: BaseException, doing: str) -> str:
    """One sentence for the user: a mistake of theirs speaks for itself, anything else says what
    failed and why."""
    if isinstance(error, AffinityVAEError):
        return str(error)
    return f"{doing} failed: {error or type(error).__name__}"


def show_failure(error: BaseException, doing: str) -> None:
    """A failure as one napari error notification (a bug's traceback goes to the log)."""
    if not isinstance(error, AffinityVAEError):
        log.error("%s failed", doing, exc_info=error)
    show_error(failure_message(error, doing))


@contextlib.contextmanager
def errors_as_notifications(doing: str) -> Iterator[None]:
    """Show an exception raised in the block (while ``doing`` something) as a notification
    instead of a traceback; napari carries on."""
    try:
        yield
    except Exception as error:
        show_failure(error, doing)


@contextlib.contextmanager
def warnings_as_notifications() -> Iterator[None]:
    """The block's own warnings (rows skipped, left out: UserWarning), each shown as a napari
    warning once the block is done; libraries' deprecation and runtime warnings are not."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield
    for warning in (w for w in caught if issubclass(w.category, UserWarning)):
        show_warning(str(warning.message))


def typed_path(value: object, what: str, field: str = "File") -> Path:
    """The path typed (or chosen) in a file ``field``, stray spaces aside, ``~`` expanded, and
    a relative one made absolute (napari's working folder is not one a user sees, so messages
    name the whole path); an empty field is the user's to fill in, saying ``what`` the file is
    for; a name longer than the system allows is refused, naming the field."""
    typed = str(value).strip()
    if typed in ("", "."):
        raise AffinityVAEError(f"Type the name of the file {what} ({field})")
    path = Path(typed).expanduser().absolute()
    long = [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX]
    if long:
        raise AffinityVAEError(
            f"{long[0][:40]}...: a name of {len(os.fsencode(long[0]))} bytes is longer than "
            f"file names may be ({NAME_MAX}): type a shorter one ({field})"
        )
    return path
