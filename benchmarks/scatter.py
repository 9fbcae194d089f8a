"""Lasso -> highlight latency of the latent scatter at 1,000,000 particles, in napari.

A lasso around one of ten clusters goes through the whole path a mouse release takes: the
selection (grid index), the session, the scatter's highlight and the viewer's highlight layer.
The repaint that follows is timed too; on a machine without a GPU (Xvfb, Mesa's software
OpenGL) it measures the software rasteriser more than the plugin. Run under Xvfb on a headless
machine: ``xvfb-run -a .venv/bin/python benchmarks/scatter.py``.

Target (issue 6): under 100 ms at 1e6 points on this machine.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

N = 1_000_000
SHAPE = (500, 2000, 2000)
CLUSTERS = 10
REPEATS = 5


def particles(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Particles inside a 500 x 2000 x 2000 tomogram, and their 2D embedding in ten clusters."""
    labels = rng.integers(0, CLUSTERS, N)
    centres = rng.uniform(-20, 20, (CLUSTERS, 2))
    xy = centres[labels] + rng.normal(0, 1.5, (N, 2))
    table = pd.DataFrame(rng.uniform(0, SHAPE, (N, 3)), columns=["z", "y", "x"])
    table.attrs["voxel_size"] = 10.0
    columns = pd.DataFrame({"embedding_x": xy[:, 0], "embedding_y": xy[:, 1], "cluster": labels})
    return table, columns


def lasso_around(xy: np.ndarray, vertices: int = 200) -> np.ndarray:
    """A hand-drawn-like loop around the points ``xy``: their spread, wobbling slightly."""
    centre, radius = xy.mean(axis=0), 2.2 * xy.std(axis=0)
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    wobble = 1 + 0.05 * np.sin(7 * t)
    return centre + np.c_[np.cos(t), np.sin(t)] * radius * wobble[:, None]


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_affinity_vae.analysis.selection import PlaneIndex
    from napari_affinity_vae.demo import PLUGIN, settle
    from napari_affinity_vae.io.tomogram import Tomogram
    from napari_affinity_vae.widgets.viewer_session import session_for

    rng = np.random.default_rng(0)
    table, columns = particles(rng)
    viewer = napari.Viewer()
    session = session_for(viewer)
    empty = np.broadcast_to(np.zeros(1, np.float32), SHAPE)  # a tomogram of no memory
    session.set_tomogram(Tomogram(Path("big"), empty, 10.0, voxel_size_from_header=True))
    _, particles_widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Particles")
    _, scatter = viewer.window.add_plugin_dock_widget(PLUGIN, "Latent scatter")
    start = time.perf_counter()
    particles_widget.show_particles(table, "particles")
    session.add_columns(session.version, columns)
    settle(1.0)
    setup = time.perf_counter() - start
    print(f"setting up {N:,} particles in napari and the scatter: {setup:.1f} s")

    xy = columns[["embedding_x", "embedding_y"]].to_numpy()
    index = PlaneIndex(xy)
    start = time.perf_counter()
    scatter.select_lasso(lasso_around(xy[:1000]))  # the first selection builds the highlight
    first = time.perf_counter() - start
    print(f"first selection (creates the viewer's highlight layer): {first:.2f} s")
    selection_ms, path_ms, paint_ms, sizes = [], [], [], []
    for i in range(REPEATS):
        polygon = lasso_around(xy[columns["cluster"].to_numpy() == i % CLUSTERS])
        start = time.perf_counter()
        rows = index.in_polygon(polygon, tolerance=scatter.plot.pixel() / 2)
        selection_ms.append((time.perf_counter() - start) * 1000)
        session.clear_selection()
        QApplication.processEvents()
        start = time.perf_counter()
        scatter.select_lasso(polygon)
        path_ms.append((time.perf_counter() - start) * 1000)
        QApplication.processEvents()
        paint_ms.append((time.perf_counter() - start) * 1000)
        sizes.append(len(rows))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    print(f"machine: {machine}")
    print(f"lasso selection alone: {np.median(selection_ms):.1f} ms (median of {REPEATS})")
    print(
        f"lasso -> highlight set in scatter and viewer: {np.median(path_ms):.1f} ms median, "
        f"{np.max(path_ms):.1f} ms worst, {int(np.median(sizes)):,} of {N:,} points selected"
    )
    print(f"... and both canvases repainted (software OpenGL): {np.median(paint_ms):.1f} ms")
    viewer.close()


if __name__ == "__main__":
    main()
