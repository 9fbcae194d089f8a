"""The ``avae`` command line: help, version and the demo's screenshot mode."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import write_mrc
from napari_affinity_vae import __version__
from napari_affinity_vae.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"avae {__version__}"


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "napari_affinity_vae.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert __version__ in result.stdout


def test_demo_bad_tomogram_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"nope")
    assert main(["demo", str(bad), "--screenshot", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "bad.mrc" in err and "header" in err
    assert not (tmp_path / "s.png").exists()


def test_demo_screenshot_shows_window_with_tomogram(tmp_path, qapp):
    rng = np.random.default_rng(0)
    tomogram = write_mrc(tmp_path / "t.mrc", rng.normal(size=(8, 64, 64)).astype(np.float32))
    shot = tmp_path / "window.png"
    assert main(["demo", str(tomogram), "--screenshot", str(shot)]) == 0
    from imageio.v3 import imread

    image = imread(shot)
    assert image.shape[0] >= 600 and image.shape[1] >= 900  # the whole window, not the canvas
    assert image[..., :3].std() > 10  # not a blank window
