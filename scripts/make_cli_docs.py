"""Write docs/cli.md, the command-line reference, from the program's own help texts."""

from __future__ import annotations

from pathlib import Path

from napari_affinity_vae.cli import reference

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

if __name__ == "__main__":
    DOCS.write_text(reference())
    print(DOCS)
