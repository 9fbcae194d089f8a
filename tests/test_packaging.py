"""The built wheel carries the root napari.yaml, and npe2 finds and validates it in a fresh venv."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import npe2, sys
manager = npe2.PluginManager()
manager.discover(include_npe1=False)
manifest = manager.get_manifest("napari-affinity-vae")
npe2.PluginManifest.validate(manifest)
expected = npe2.PluginManifest.from_file(sys.argv[1])
assert manifest.contributions == expected.contributions, "manifest differs from napari.yaml"
print("found", manifest.display_name, len(manifest.contributions.commands), "commands")
"""


@pytest.mark.packaging
def test_wheel_manifest_is_found_by_npe2_in_fresh_venv(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("napari_affinity_vae-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("napari_affinity_vae/napari.yaml")
        entry_points = archive.read(
            next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        ).decode()
        names = archive.namelist()
    assert packaged == (ROOT / "napari.yaml").read_bytes()
    assert "napari_affinity_vae/simulate/data/correlations_10A.csv" in names
    for model in ("bundled", "bundled_splat"):
        assert f"napari_affinity_vae/model/data/{model}.safetensors" in names
        assert f"napari_affinity_vae/model/data/{model}.json" in names
    assert "napari-affinity-vae = napari_affinity_vae:napari.yaml" in entry_points

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "npe2"], check=True, capture_output=True)
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, capture_output=True)
    result = subprocess.run(
        [str(python), "-c", CHECK, str(ROOT / "napari.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "found Affinity-VAE" in result.stdout
