"""Show errors a user caused as napari notifications instead of tracebacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from napari.utils.notifications import show_error

from napari_affinity_vae.errors import AffinityVAEError


@contextlib.contextmanager
def errors_as_notifications() -> Iterator[None]:
    """Turn an :class:`AffinityVAEError` raised in the block into a napari error notification."""
    try:
        yield
    except AffinityVAEError as err:
        show_error(str(err))
