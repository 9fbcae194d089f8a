"""Shared fixtures: small MRC files and particle tables written to a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from napari_affinity_vae.simulate.project import write_project
from napari_affinity_vae.simulate.tomogram import Simulation

RELION5_SIMULATION = Simulation(
    shape=(40, 96, 112), particles=6, snr=1.0, seed=7, classes=("globular",)
)


def write_mrc(path: Path, data: np.ndarray, voxel_size: float = 10.0) -> Path:
    with mrcfile.new(path, data, overwrite=True) as mrc:
        mrc.voxel_size = voxel_size
    return path


def blob_map(seed: int, box: int = 20, spread: float = 0.5, blobs: int = 12) -> np.ndarray:
    """A smooth asymmetric (z, y, x) map: Gaussian blobs (sd 1.5-2.5 voxels) at random places
    within ``spread`` x ``box`` of the centre. With the default spread they reach the box's
    edges, as in a tightly cropped EMDB map (EMD-3197 is 20^3 voxels at 11.4 A)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(box)] * 3, indexing="ij"), axis=-1)
    volume = np.zeros((box, box, box), np.float32)
    for _ in range(blobs):
        centre = box / 2 + rng.uniform(-spread * box, spread * box, 3)
        sd = rng.uniform(1.5, 2.5)
        volume += np.exp(-np.sum((grid - centre) ** 2, axis=-1) / (2 * sd * sd))
    return volume


@pytest.fixture
def tomogram_file(tmp_path: Path) -> Path:
    """A 20 x 30 x 40 float32 tomogram at 7.5 A/voxel with a dark blob at (10, 15, 20)."""
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1, (20, 30, 40)).astype(np.float32)
    data[8:13, 13:18, 18:23] -= 5
    return write_mrc(tmp_path / "tomo_01.mrc", data, voxel_size=7.5)


@pytest.fixture
def small_tomogram(tmp_path) -> Path:
    """A 40 x 60 x 60 float32 tomogram at 10 A/voxel with three dark blobs."""
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1, (40, 60, 60)).astype(np.float32)
    for z, y, x in ((20, 20, 20), (20, 40, 40), (20, 20, 40)):
        data[z - 3 : z + 4, y - 3 : y + 4, x - 3 : x + 4] -= 4
    return write_mrc(tmp_path / "small.mrc", data, voxel_size=10.0)


@pytest.fixture
def particles() -> pd.DataFrame:
    """Five particles inside a 20 x 30 x 40 tomogram, with angles and extra columns."""
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "z": [1.0, 5.5, 10.0, 12.25, 19.0],
            "y": [2.0, 7.0, 15.0, 20.5, 29.0],
            "x": [3.0, 9.0, 20.0, 33.75, 39.0],
            "rot": rng.uniform(-180, 180, 5),
            "tilt": rng.uniform(5, 175, 5),
            "psi": rng.uniform(-180, 180, 5),
            "score": [0.9, 0.8, 0.7, 0.6, 0.5],
            "cluster": [0, 1, 1, 2, 0],
        }
    )


@pytest.fixture(scope="session")
def sample_simulation():
    """The napari sample tomogram (simulated once for the whole run) and its ground truth."""
    from napari_affinity_vae._sample_data import SAMPLE
    from napari_affinity_vae.simulate.tomogram import simulate_tomogram

    return simulate_tomogram(SAMPLE)


@pytest.fixture(autouse=True)
def _widget_settings(tmp_path_factory, monkeypatch):
    """Widgets remember settings in a file of each test's own, never in the user's config."""
    path = tmp_path_factory.mktemp("settings") / "widgets.json"
    monkeypatch.setenv("NAPARI_AFFINITY_VAE_SETTINGS", str(path))
    return path


@pytest.fixture
def notifications():
    """The napari notifications shown during a test, in order."""
    from napari.utils.notifications import notification_manager

    shown = []
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)


STEP_S = 0.1


@pytest.fixture
def slow_embedding(monkeypatch):
    """The Embed widget's encoding (of a tomogram's particles or a project's) takes at least
    ``STEP_S`` per batch, so tests that need a
    running embedding (to cancel it, edit the particles meanwhile, or watch the event loop) have
    one for a known time, whatever the machine's speed. Yields the list of steps taken."""
    import time

    from napari_affinity_vae.model import embedding
    from napari_affinity_vae.operations import embed_project
    from napari_affinity_vae.widgets import embed

    taken = []

    def slowly(*args, **kwargs):
        steps = embedding.embed_steps(*args, **kwargs)
        try:
            while True:
                time.sleep(STEP_S)
                done = next(steps)
                taken.append(done)
                yield done
        except StopIteration as stop:
            return stop.value

    monkeypatch.setattr(embed, "embed_steps", slowly)
    monkeypatch.setattr(embed_project, "embed_steps", slowly)  # a project's, in this process
    return taken


@pytest.fixture
def explorer(make_napari_viewer):
    """A viewer with every dock widget of the plugin, and its session."""
    from napari_affinity_vae.demo import add_dock_widgets
    from napari_affinity_vae.widgets.viewer_session import session_for

    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    return viewer, widgets, session_for(viewer)


@pytest.fixture(scope="module")
def relion5(tmp_path_factory) -> Path:
    """A simulated RELION 5 project of three tomograms (tilt series binned 4 times)."""
    folder = tmp_path_factory.mktemp("relion5")
    write_project(folder, RELION5_SIMULATION, 3)
    return folder


def relion_layout(tmp_path: Path, relion5: Path) -> Path:
    """The simulated project as RELION lays it out: STAR files in job folders, paths relative to
    the project folder above them, denoised and half tomograms instead of one reconstruction."""
    root = tmp_path / "relion"
    (root / "Tomograms/job007/tomograms").mkdir(parents=True)
    (root / "Denoise/job009/tomograms").mkdir(parents=True)
    (root / "Picks/job010").mkdir(parents=True)
    table = starfile.read(relion5 / "tomograms.star", always_dict=True)["global"]
    for name in table["rlnTomoName"]:
        source = relion5 / "tomograms" / f"{name}.mrc"
        shutil.copy(source, root / f"Denoise/job009/tomograms/rec_{name}.mrc")
        for half in ("half1", "half2"):
            shutil.copy(source, root / f"Tomograms/job007/tomograms/rec_{name}_{half}.mrc")
    table = table.drop(columns=["rlnTomoReconstructedTomogram"])
    for half in ("Half1", "Half2"):
        table[f"rlnTomoReconstructedTomogram{half}"] = [
            f"Tomograms/job007/tomograms/rec_{n}_{half.lower()}.mrc" for n in table["rlnTomoName"]
        ]
    table["rlnTomoReconstructedTomogramDenoised"] = [
        f"Denoise/job009/tomograms/rec_{n}.mrc" for n in table["rlnTomoName"]
    ]
    starfile.write({"global": table}, root / "Tomograms/job007/tomograms.star")
    shutil.copy(relion5 / "particles.star", root / "Picks/job010/particles.star")
    starfile.write(
        {
            "optimisation_set": pd.DataFrame(
                {
                    "rlnTomoParticlesFile": ["Picks/job010/particles.star"],
                    "rlnTomoTomogramsFile": ["Tomograms/job007/tomograms.star"],
                }
            )
        },
        root / "Picks/job010/optimisation_set.star",
    )
    return root
