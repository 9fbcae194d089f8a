"""Words for counts, as the widgets and the command line say them."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for one: "1 particle", "3 particles", "0 boxes"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
