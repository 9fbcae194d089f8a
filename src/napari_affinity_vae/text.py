"""Words for counts, as the widgets and the command line say them."""

from __future__ import annotations

from collections.abc import Iterable


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for one: "1 particle", "3 particles", "0 boxes"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def sentence(note: str) -> str:
    """``note`` begun with a capital, unless its first word is spelt with one already inside
    (t-SNE, mRNA)."""
    first = note.split(" ", 1)[0]
    return note if first[1:] != first[1:].lower() else note[:1].upper() + note[1:]


def first_few(indices: Iterable[int], most: int = 5) -> str:
    """Indices as "1, 4, 9": the first ``most``, then how many more ("... and 3 more")."""
    shown = [str(int(i)) for i in indices]
    more = f" and {len(shown) - most} more" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more


def strict_json(data: object) -> str:
    """``data`` as indented JSON that strict readers (jq, JavaScript) take: a NaN or infinite
    number, which Python would write bare, is null."""
    import json
    import math

    def finite(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(data), indent=2, allow_nan=False)
