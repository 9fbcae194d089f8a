"""The explorer on a project of 200 tomograms and 1,000,000 particles, in napari.

Synthetic: 200 small tomograms (32 x 128 x 128 bytes of noise), 5,000 particles each with
latents, a 2D embedding in ten clusters and cluster labels, as a RELION 5 project. Prints the
seconds to open the project in the Project dock and draw the scatter of every particle (target
< 3 s for the scatter), the lasso -> highlight latency (target < 100 ms) and the time from a click
on a scatter point of a tomogram not shown to that tomogram open and centred (target < 1 s,
before the repaint, which on a machine without a GPU measures Mesa's software OpenGL). Run under
Xvfb on a headless machine: ``xvfb-run -a .venv/bin/python benchmarks/project_gui.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from scatter import lasso_around  # benchmarks/scatter.py: a hand-drawn-like loop

TOMOGRAMS, PER_TOMOGRAM = 200, 5_000
SHAPE = (32, 128, 128)
CLUSTERS, REPEATS = 10, 5


def write_synthetic_project(folder: Path) -> Path:
    """tomograms.star, particles.star and an optimisation set; returns the latter."""
    from napari_affinity_vae.io.tomogram import write_tomogram

    rng = np.random.default_rng(0)
    (folder / "tomograms").mkdir()
    names = [f"TS_{i + 1:03d}" for i in range(TOMOGRAMS)]
    for name in names:
        noise = rng.normal(size=SHAPE).astype(np.float32)
        write_tomogram(folder / "tomograms" / f"{name}.mrc", noise, 10.0)
    starfile.write(
        {
            "global": pd.DataFrame(
                {
                    "rlnTomoName": names,
                    "rlnTomoTiltSeriesPixelSize": 10.0,
                    "rlnTomoTomogramBinning": 1.0,
                    "rlnTomoSizeX": SHAPE[2],
                    "rlnTomoSizeY": SHAPE[1],
                    "rlnTomoSizeZ": SHAPE[0],
                    "rlnTomoReconstructedTomogram": [f"tomograms/{n}.mrc" for n in names],
                }
            )
        },
        folder / "tomograms.star",
    )
    n = TOMOGRAMS * PER_TOMOGRAM
    labels = rng.integers(0, CLUSTERS, n)
    xy = rng.uniform(-20, 20, (CLUSTERS, 2))[labels] + rng.normal(0, 1.5, (n, 2))
    half = np.array(SHAPE[::-1]) * 10.0 / 2 - 50
    table = pd.DataFrame(
        {
            "rlnTomoName": np.repeat(names, PER_TOMOGRAM),
            **{
                f"rlnCenteredCoordinate{a}Angst": rng.uniform(-h, h, n)
                for a, h in zip("XYZ", half, strict=True)
            },
            **{f"latent_{i}": rng.normal(size=n) for i in range(8)},
            "embedding_x": xy[:, 0],
            "embedding_y": xy[:, 1],
            "cluster": labels,
        }
    )
    starfile.write({"particles": table}, folder / "particles.star", float_format="%.4f")
    starfile.write(
        {"": {"rlnTomoParticlesFile": "particles.star", "rlnTomoTomogramsFile": "tomograms.star"}},
        folder / "optimisation_set.star",
    )
    return folder / "optimisation_set.star"


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_affinity_vae.demo import add_dock_widgets, settle
    from napari_affinity_vae.io.projects import open_project
    from napari_affinity_vae.widgets.viewer_session import session_for

    with tempfile.TemporaryDirectory() as folder:
        os.environ["NAPARI_AFFINITY_VAE_SETTINGS"] = str(Path(folder) / "settings.json")
        start = time.perf_counter()
        source = write_synthetic_project(Path(folder))
        print(f"writing the synthetic project: {time.perf_counter() - start:.0f} s")
        star = open_project([source])
        twin = Path(folder) / "particles.parquet"
        star.particles.to_parquet(twin)
        start = time.perf_counter()
        open_project([Path(folder) / "tomograms.star", twin])
        print(f"open the project from a Parquet twin: {time.perf_counter() - start:.2f} s")
        viewer = napari.Viewer()
        widgets, _ = add_dock_widgets(viewer)
        session = session_for(viewer)
        dock, scatter = widgets["Project"], widgets["Latent scatter"]
        dock.files.value = (source,)
        start = time.perf_counter()
        dock.open_button.native.click()
        opened = time.perf_counter() - start
        settle(0.5)
        n = len(session.particles)
        print(f"project: {len(session.project.tomograms)} tomograms, {n:,} particles")
        print(f"open the project, show a tomogram, draw the scatter: {opened:.1f} s")
        start = time.perf_counter()
        scatter._redraw()
        print(f"draw the scatter of {n:,} points: {time.perf_counter() - start:.2f} s")

        xy, labels = session.embedding, session.clusters
        scatter.select_lasso(lasso_around(xy[:1000]))  # the first builds the highlight layer
        lasso_ms = []
        for i in range(REPEATS):
            polygon = lasso_around(xy[labels == i % CLUSTERS])
            session.clear_selection()
            QApplication.processEvents()
            start = time.perf_counter()
            scatter.select_lasso(polygon)
            lasso_ms.append((time.perf_counter() - start) * 1000)
            QApplication.processEvents()
        print(f"lasso -> highlight across the project: {np.median(lasso_ms):.0f} ms median")

        click_ms, paint_ms = [], []
        scatter.canvas.native.resize(400, 400)
        settle(0.2)
        for i in range(REPEATS):
            row = (i * 37 + 1) * PER_TOMOGRAM + 11  # a particle of a tomogram not shown
            scatter.view.camera.rect = (*(xy[row] - 0.05), 0.1, 0.1)  # zoomed onto it
            settle(0.1)
            pos = scatter.view.scene.transform.map(xy[row])[:2]
            start = time.perf_counter()
            scatter.canvas.events.mouse_press(pos=pos, button=1, modifiers=())
            scatter.canvas.events.mouse_release(pos=pos, button=1, modifiers=())
            click_ms.append((time.perf_counter() - start) * 1000)
            QApplication.processEvents()
            paint_ms.append((time.perf_counter() - start) * 1000)
            name = session.particles.loc[row, "tomo_name"]
            assert session.tomogram.name == name, (session.tomogram.name, name)
        print(
            f"click a point of another tomogram -> it is open and centred: "
            f"{np.median(click_ms):.0f} ms median ({np.median(paint_ms):.0f} ms with the repaint)"
        )
        viewer.close()


if __name__ == "__main__":
    main()
