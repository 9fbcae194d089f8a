"""Words for counts, as the widgets and the command line say them."""

from __future__ import annotations

from collections.abc import Iterable


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for one: "1 particle", "3 particles", "0 boxes"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def first_few(indices: Iterable[int], most: int = 5) -> str:
    """Indices as "1, 4, 9": the first ``most``, then how many more ("... and 3 more")."""
    shown = [str(int(i)) for i in indices]
    more = f" and {len(shown) - most} more" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more
