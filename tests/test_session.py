"""The Qt-free parts of the explorer: the shared session, selection geometry, explanations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from skimage.measure import points_in_poly

from napari_affinity_vae.analysis.explain import explain_selection
from napari_affinity_vae.analysis.selection import PlaneIndex
from napari_affinity_vae.errors import AnalysisError
from napari_affinity_vae.schema import LATENT_PREFIX, derived_columns, numbered_columns
from napari_affinity_vae.session import Session


def _table(n: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.uniform(0, 50, (n, 3)), columns=["z", "y", "x"])


def test_the_session_imports_without_torch():
    """The session is shared state, not a model: importing it must not load torch (seconds, and
    gigabytes on a machine that only explores tables)."""
    code = "import sys, napari_affinity_vae.session; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_derived_columns_are_those_embedding_and_analysis_compute():
    given = ["z", "y", "x", "tomo_name", "score"]
    computed = ["latent_0", "latent_10", "pose_0", "reconstruction_error", "crosses_edge"]
    table = pd.DataFrame(columns=[*given, *computed, "embedding_x", "embedding_y", "cluster"])
    assert derived_columns(table) == list(table.columns[5:])
    assert numbered_columns(table, LATENT_PREFIX) == ["latent_0", "latent_10"]


def test_new_particles_clear_the_selection_and_bump_the_version():
    session, emitted = Session(), []
    session.selection_changed.connect(emitted.append)
    version = session.set_particles(_table())
    session.select([3, 1, 1, 99, -2])
    assert session.selection.tolist() == [1, 3]  # sorted, unique, rows outside dropped
    session.select([5], "add")
    session.select([1], "remove")
    assert session.selection.tolist() == [3, 5]
    assert session.set_particles(_table(4)) == version + 1
    assert session.selection.tolist() == [] and emitted[-1] is None


def test_a_result_for_an_older_table_is_discarded():
    session = Session()
    old = session.set_particles(_table())
    latents = pd.DataFrame({"latent_0": np.arange(10.0), "latent_1": np.ones(10)})
    session.set_particles(_table())  # the user edited the particles meanwhile
    assert not session.add_columns(old, latents)
    assert session.latent is None
    assert session.add_columns(session.version, latents)
    np.testing.assert_array_equal(session.latent[:, 0], np.arange(10.0))


def test_a_result_for_a_table_edited_by_hand_since_lands_on_its_rows():
    """Computed on five rows; since then row 1 was deleted, row 3 moved and one added, and
    columns were added: each value lands on its particle, the moved and added ones get none."""
    session = Session()
    session.set_particles(_table(5))
    computed = session.version
    session.set_particles(_table(4), by_hand=True, edit=("removed", [1]))
    session.set_particles(_table(4), by_hand=True, edit=("changed", [2]))
    session.add_columns(session.version, pd.DataFrame({"score": np.arange(4.0)}))
    session.set_particles(_table(5), by_hand=True, edit=("added", []))
    values = pd.DataFrame({"latent_0": [0.0, 1.0, 2.0, 3.0, 4.0], "cluster": [5, 6, 7, 8, 9]})
    assert not session.add_columns(computed, values.assign(score=1.0))  # not only derived
    assert session.add_columns(computed, values, True)
    assert not session.by_hand  # the scatter fits its view to the new embedding
    np.testing.assert_array_equal(session.particles["latent_0"], [0, 2, np.nan, 4, np.nan])
    assert session.clusters.tolist() == [5, 7, -1, 9, -1]
    with pytest.raises(ValueError, match="4 result rows for 5 particles"):
        session.add_columns(computed, values.head(4))
    session.set_particles(_table(5))  # other particles: nothing computed before lands
    assert not session.add_columns(computed, values)


def test_a_hand_edit_applied_to_the_session_keeps_the_others_latents_and_selection():
    """The session, Qt-free, takes a point added and one removed by hand: the others keep their
    latents and stay selected; the new point waits for the next embedding."""
    session = Session()
    session.set_particles(_table(4))
    latents = pd.DataFrame({"latent_0": np.arange(4.0), "latent_1": np.ones(4)})
    assert session.add_columns(session.version, latents)
    session.select([1, 3])
    rows = np.arange(4)
    table = session.apply_hand_edit(rows, "added", np.array([4]), np.array([[1.0, 2, 3]]), None)
    assert len(table) == 5 and np.isnan(table.loc[4, "latent_0"])
    assert table["latent_0"].iloc[:4].tolist() == [0, 1, 2, 3]
    table = session.apply_hand_edit(np.arange(5), "removed", np.array([0]), np.zeros((0, 3)), None)
    assert table["latent_0"].iloc[:3].tolist() == [1, 2, 3]
    assert session.selection.tolist() == [0, 2]  # the same particles, a row earlier


def test_a_new_embedding_replaces_every_derived_column():
    session = Session()
    session.set_particles(_table())
    first = pd.DataFrame({"latent_0": np.zeros(10), "latent_1": np.zeros(10), "cluster": 1})
    session.add_columns(session.version, first)
    session.add_columns(session.version, pd.DataFrame({"latent_0": np.ones(10)}), True)
    assert session.latent.shape == (10, 1) and session.clusters is None
    with pytest.raises(ValueError, match="3 result rows for 10 particles"):
        session.add_columns(session.version, pd.DataFrame({"latent_0": np.ones(3)}))


@pytest.fixture(scope="module")
def cloud() -> PlaneIndex:
    return PlaneIndex(np.random.default_rng(2).normal(size=(200_000, 2)))


@pytest.mark.parametrize("seed", range(6))
def test_lasso_selects_exactly_the_points_inside(cloud, seed):
    rng = np.random.default_rng(seed)
    if seed < 3:  # a wobbly loop as a hand draws it
        t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
        radius = 1 + 0.3 * np.sin(rng.integers(2, 8) * t)
        polygon = np.c_[radius * np.cos(t), radius * np.sin(t)] + rng.normal(0, 0.3, 2)
    else:  # a self-crossing scribble, partly outside the cloud
        polygon = rng.normal(0, 2.5, (9, 2))
    expected = np.flatnonzero(points_in_poly(cloud.xy, polygon))
    np.testing.assert_array_equal(cloud.in_polygon(polygon), expected)


def test_rectangle_and_click(cloud):
    rows = cloud.in_rectangle(np.array([0.5, 0.5]), np.array([-0.5, -0.2]))
    x, y = cloud.xy.T
    expected = np.flatnonzero((x >= -0.5) & (x <= 0.5) & (y >= -0.2) & (y <= 0.5))
    np.testing.assert_array_equal(rows, expected)
    target = cloud.xy[1234]
    assert cloud.nearest(target + 1e-9, radius=1e-6) == 1234
    assert cloud.nearest(np.array([50.0, 50.0]), radius=1.0) is None


def test_explanation_names_the_dimensions_that_separate_a_selection():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(3000, 8))
    latent[:400, 5] += 3.0
    latent[:400, 2] -= 1.5
    found = explain_selection(latent, np.arange(400), max_dimensions=3).dimensions
    assert [e.dimension for e in found[:2]] == [5, 2]
    assert found[0].weight > 0 > found[1].weight
    assert found[0].selected_mean > 2.5 and abs(found[0].others_mean) < 0.2
    with pytest.raises(AnalysisError, match="some particles selected and some not: none of"):
        explain_selection(latent, np.arange(0))


def test_a_progress_bar_closes_when_its_step_fails():
    from napari_affinity_vae.progress import run_steps

    closed = []

    class Bar:
        def __init__(self, **_kwargs):
            pass

        def update(self, _n):
            pass

        def close(self):
            closed.append(True)

    def failing():
        yield 1
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        run_steps(failing(), 2, "work", Bar)
    assert closed == [True]
