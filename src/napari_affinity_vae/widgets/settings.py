"""Dock widget settings remembered between napari sessions, in a JSON file in the user's config
folder (``NAPARI_AFFINITY_VAE_SETTINGS`` names another file)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import platformdirs
from magicgui.widgets.bases import ValueWidget

from napari_affinity_vae.io.atomic import atomic_path

ENVIRONMENT = "NAPARI_AFFINITY_VAE_SETTINGS"


def settings_path() -> Path:
    override = os.environ.get(ENVIRONMENT)
    if override:
        return Path(override)
    return platformdirs.user_config_path("napari-affinity-vae") / "widgets.json"


def _load() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(settings_path().read_text())
    except (OSError, ValueError):
        return {}


def remember(section: str, widgets: dict[str, ValueWidget]) -> None:
    """Restore the widgets' last values (ignoring any that no longer fit) and save them on every
    change."""
    for key, value in _load().get(section, {}).items():
        if key in widgets:
            with contextlib.suppress(ValueError, TypeError):
                widgets[key].value = value

    def save(_value: object = None) -> None:
        settings = _load()
        settings[section] = {key: _plain(w.value) for key, w in widgets.items()}
        path = settings_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(settings, indent=2))
        except OSError:
            pass  # settings are a convenience; never fail a widget over them

    for widget in widgets.values():
        widget.changed.connect(save)


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a widget value (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
