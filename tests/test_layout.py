"""The layers: lower ones never import higher ones, read from the source with ast (nothing is
imported, so a lazy import inside a function counts as much as one at the top)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "napari_affinity_vae"
NAME = PACKAGE.name


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module of this package that ``path`` (or ``source`` as if it were at ``path``)
    imports, as dotted names (``from a import b`` gives both ``a`` and ``a.b``, as ``b`` may be
    a module)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m == NAME or m.startswith(f"{NAME}.")}


def modules_of(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "path", modules_of("particles", "model"), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_particles_and_model_import_nothing_from_simulate(path):
    simulate = f"{NAME}.simulate"
    wrong = sorted(m for m in imported_modules(path) if f"{m}.".startswith(f"{simulate}."))
    assert not wrong, f"{path.relative_to(PACKAGE)} imports {', '.join(wrong)}"


@pytest.mark.parametrize("path", modules_of("model"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_model_imports_nothing_from_analysis_or_operations(path):
    """Scoring a model against ground truth uses both, so it is an operation (evaluate.py)."""
    above = (f"{NAME}.analysis.", f"{NAME}.operations.")
    wrong = sorted(m for m in imported_modules(path) if f"{m}.".startswith(above))
    assert not wrong, f"{path.relative_to(PACKAGE)} imports {', '.join(wrong)}"


@pytest.mark.parametrize("name", ["schema.py", "volumes.py", "errors.py", "progress.py"])
def test_neutral_modules_import_nothing_of_the_package(name):
    assert imported_modules(PACKAGE / name) == set()


GUI_LIBRARIES = ("napari", "qtpy", "vispy", "magicgui", "superqt", "PyQt5", "PyQt6")
GUI_MODULES = tuple(f"{NAME}.{m}" for m in ("widgets", "layers", "colours", "demo"))


def every_import(path: Path) -> set[str]:
    """Every module ``path`` imports, of any package, lazily or not (dotted names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found | imported_modules(path)


@pytest.mark.parametrize(
    "path",
    [
        *modules_of("io", "particles", "model", "analysis", "operations", "simulate"),
        PACKAGE / "session.py",
    ],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_below_the_widgets_nothing_imports_napari_qt_or_vispy(path):
    """The pipeline runs headless (the command line, a Dask worker): the session, operations and
    everything under them import neither a GUI library nor a module that does. The session once
    loaded vispy's OpenGL code through one helper kept beside the layer adapters."""
    wrong = sorted(
        m
        for m in every_import(path)
        if m.split(".")[0] in GUI_LIBRARIES or any(f"{m}.".startswith(f"{g}.") for g in GUI_MODULES)
    )
    assert not wrong, f"{path.relative_to(PACKAGE)} imports {', '.join(wrong)}"


def test_the_check_sees_every_form_of_import():
    assert imported_modules(PACKAGE / "model" / "example.py", SAMPLE) >= {
        f"{NAME}.simulate",
        f"{NAME}.simulate.molecules",
        f"{NAME}.simulate.affinity",
        f"{NAME}.simulate.density",
    }


SAMPLE = """
import napari_affinity_vae.simulate.molecules
from napari_affinity_vae import simulate

def later():
    from ..simulate.affinity import builtin_affinity
    from ..simulate import density
"""
