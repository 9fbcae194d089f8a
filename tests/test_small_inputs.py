"""0, 1, 2 and a few particles through every Qt-free verb: clustering, projection, explanation
and ``avae embed``. Each works or says why in one sentence; none ends in a library's traceback."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import write_mrc
from napari_affinity_vae.analysis.clustering import (
    cluster,
    clusters_possible,
    snap_centres,
    too_few_for_hdbscan,
)
from napari_affinity_vae.analysis.explain import explain_selection, fit_column
from napari_affinity_vae.analysis.projection import PROJECTIONS, layout, project
from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import AffinityVAEError, AnalysisError
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.operations.analyse import NOTES, analyse_steps
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import CLUSTER

SIZES = (0, 1, 2, 5)


def latents(n: int, dims: int = 8) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, dims))


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        (3, 10, (3, None)),
        (2, 2, (2, None)),
        (9, 2, (2, "asked for 9 clusters of 2 particles; made 2")),
        (9, 1, (1, "asked for 9 clusters of 1 particle; made 1")),
        (4, 0, (0, "asked for 4 clusters of 0 particles; made 0")),
    ],
)
def test_clusters_possible(k, n, expected):
    assert clusters_possible(k, n) == expected


def test_particles_at_one_place_count_once_among_the_clusters_possible():
    """Eight picks at two places: 'made 8' was said while 2 clusters were made, and asked for
    5 none was said."""
    latent = np.repeat(latents(2), 4, axis=0)
    columns = run_steps(analyse_steps(latent, "pca", "kmeans", clusters=5), 2, "", None)
    assert columns[CLUSTER].nunique() == 2
    assert columns.attrs[NOTES] == [
        "asked for 5 clusters of 8 particles, 2 of them distinct; made 2"
    ]


def test_no_clusters_is_refused_and_too_many_is_a_clear_error():
    with pytest.raises(AnalysisError, match="asked for 0 clusters; ask for at least 1"):
        clusters_possible(0, 5)
    with pytest.raises(AnalysisError, match="cannot make 9 clusters of 2 particles"):
        cluster(latents(2), "kmeans", 9)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_kmeans_and_gmm_of_few_particles(n, method):
    k, _ = clusters_possible(9, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        labels = cluster(latents(n), method, k)
    assert len(labels) == n and sorted(set(labels)) == list(range(n))  # one particle a cluster
    assert sorted(snap_centres(latents(n), labels).values()) == list(range(n))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_hdbscan_of_fewer_particles_than_a_cluster_is_all_noise(n):
    labels = cluster(latents(n), "hdbscan")
    assert list(labels) == [-1] * n
    assert f"at least 5 particles to make a cluster; {n} particle" in too_few_for_hdbscan(n)


def test_hdbscan_of_none_and_of_five():
    assert len(cluster(latents(0), "hdbscan")) == 0
    assert len(cluster(latents(5), "hdbscan")) == 5


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("method", PROJECTIONS)
def test_projection_of_few_particles(n, method):
    latent = latents(n)
    xy = project(latent, method)
    assert xy.shape == (n, 2) and np.isfinite(xy).all()
    used, said = layout(latent, method)
    if method != "pca" and n == 2:
        assert used == "pca" and "needs at least 5 particles; 2 are laid out by PCA" in said
    if n == 1:
        np.testing.assert_array_equal(xy, [[0.0, 0.0]])  # one particle: at the origin
    if n == 2:  # two: on the x axis, as far apart as in the latent space
        assert xy[:, 1] == pytest.approx([0, 0], abs=1e-9)
        assert abs(xy[0, 0] - xy[1, 0]) == pytest.approx(np.linalg.norm(latent[0] - latent[1]))
        assert xy[:, 0].sum() == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("method", PROJECTIONS)
def test_projection_of_identical_latents(method):
    xy = project(np.ones((6, 8)), method)
    np.testing.assert_array_equal(xy, np.zeros((6, 2)))
    assert layout(np.ones((6, 8)), method)[1].startswith("the 6 latent vectors are all the same")


@pytest.mark.parametrize(
    ("n", "rows", "message"),
    [
        (0, [], "some particles selected and some not: none are selected"),
        (1, [0], "some particles selected and some not: all 1 is selected"),
        (1, [], "some particles selected and some not: none of the 1 are selected"),
        (2, [0, 1], "some particles selected and some not: all 2 are selected"),
        (2, [], "some particles selected and some not: none of the 2 are selected"),
        (2, [1], "Explain needs at least 3 particles"),
        (5, [0, 1, 2, 3, 4], "some particles selected and some not: all 5 are selected"),
    ],
)
def test_explain_says_why_it_cannot(n, rows, message):
    with pytest.raises(AffinityVAEError, match=message):
        explain_selection(latents(n), np.array(rows, dtype=int))


@pytest.mark.parametrize("rows", [[0], [1, 3]])
def test_explain_few_particles(rows):
    """Among 5 particles any one is the highest on some dimension: standing apart on one tells
    nothing, and no dimension is given. Among 30 the same selection is explained, and with
    fewer than 4 particles selected its accuracy is not cross-validated."""
    for n, explained in ((5, False), (30, True)):
        latent = latents(n)
        others = np.setdiff1d(np.arange(n), rows)
        latent[rows] = latent[others].mean(axis=0)  # apart on dimension 3 alone
        latent[rows, 3] += 10.0
        found = explain_selection(latent, np.array(rows))
        assert bool(found.dimensions) == explained and found.accuracy is None
        if explained:
            assert found.dimensions[0].dimension == 3 and found.dimensions[0].weight > 0


@pytest.mark.parametrize("n", SIZES)
def test_fitting_a_column_of_few_particles_says_why_it_cannot(n):
    with pytest.raises(
        AnalysisError,
        match=f"10 particles with both a value of score .*; {n} {'has' if n == 1 else 'have'}$",
    ):
        fit_column(latents(n), np.arange(n, dtype=float), "score")


@pytest.fixture
def tiny_tomogram(tmp_path):
    rng = np.random.default_rng(0)
    return write_mrc(tmp_path / "tiny.mrc", rng.normal(size=(40, 64, 64)).astype(np.float32))


def test_embed_command_of_an_empty_pick_list(tiny_tomogram, tmp_path, capsys):
    picks = write_particles(pd.DataFrame({"z": [], "y": [], "x": []}), tmp_path / "none.star")
    out = tmp_path / "embedded.star"
    assert main(["embed", str(tiny_tomogram), str(picks), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"avae embed: error: {picks}: no particles to embed"
    assert not out.exists()


@pytest.mark.parametrize(
    "options",
    [
        ["--clusters", "9"],
        ["--clusters", "9", "--umap"],
        ["--clusters", "9", "--tsne"],
        ["--clusters", "9", "--clustering", "gmm"],
        ["--clustering", "hdbscan", "--umap"],
    ],
)
@pytest.mark.parametrize("n", [1, 2])
def test_embed_command_of_one_or_two_picks(tiny_tomogram, tmp_path, capsys, options, n):
    table = pd.DataFrame({"z": [20.0, 21.0][:n], "y": [32.0, 20.0][:n], "x": [32.0, 40.0][:n]})
    picks = write_particles(table, tmp_path / "picks.csv")
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(tiny_tomogram), str(picks), "--out", str(out), *options]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    back = read_particles(out)
    assert len(back) == n and np.isfinite(back[["embedding_x", "embedding_y"]]).all(axis=None)
    if "--clusters" in options:
        assert f"avae embed: asked for 9 clusters of {n} particle" in err
        assert sorted(back["cluster"]) == list(range(n)) and back["cluster_centre"].all()
    else:
        assert "avae embed: HDBSCAN needs at least 5 particles" in err
        assert list(back["cluster"]) == [-1] * n and not back["cluster_centre"].any()
    if n == 2 and ("--umap" in options or "--tsne" in options):
        assert "are laid out by PCA" in err


def test_embed_command_refuses_zero_clusters(tiny_tomogram, tmp_path, capsys):
    picks = write_particles(
        pd.DataFrame({"z": [20.0], "y": [32.0], "x": [32.0]}), tmp_path / "p.csv"
    )
    args = ["embed", str(tiny_tomogram), str(picks), "--out", str(tmp_path / "e.csv")]
    with pytest.raises(SystemExit) as refused:  # as the line is read, before any embedding
        main([*args, "--clusters", "0"])
    assert refused.value.code == 2 and not (tmp_path / "e.csv").exists()
    assert "argument --clusters: must be a whole number of at least 1" in capsys.readouterr().err


def test_analysis_notes_only_what_the_user_should_know():
    from napari_affinity_vae.operations.analyse import NOTES, analyse_steps
    from napari_affinity_vae.progress import run_steps

    latent = np.random.default_rng(0).normal(size=(40, 8))
    columns = run_steps(analyse_steps(latent, "umap", "kmeans", 3), 2, "analyse", None)
    assert columns.attrs[NOTES] == []  # UMAP's own warnings (n_jobs) are not the user's concern
    assert columns["cluster_centre"].sum() == 3
    few = run_steps(analyse_steps(latent[:2], "umap", "kmeans", 3), 2, "analyse", None)
    assert few.attrs[NOTES] == [  # in the order of the steps
        "UMAP needs at least 5 particles; 2 are laid out by PCA instead",
        "asked for 3 clusters of 2 particles; made 2",
    ]
    noise = run_steps(analyse_steps(latent[:3], "pca", "hdbscan"), 2, "analyse", None)
    assert noise.attrs[NOTES] == [
        "HDBSCAN needs at least 5 particles to make a cluster; 3 particles left as noise (-1)"
    ]
