"""Embedding particles: bounded batches, edge flags, rescaling, clusters that match the classes,
projections and the pick / embed commands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score
from vispy.color import Color

from napari_affinity_vae.analysis.clustering import cluster, snap_centres
from napari_affinity_vae.analysis.projection import project
from napari_affinity_vae.cli import main
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.tomogram import Tomogram, write_tomogram
from napari_affinity_vae.model import embedding
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.embedding import embed, embed_steps
from napari_affinity_vae.model.inference import encode
from napari_affinity_vae.particles.extract import extract_boxes
from napari_affinity_vae.particles.matching import match_picks, radii_of
from napari_affinity_vae.schema import latent_columns
from napari_affinity_vae.simulate.molecules import extent


@pytest.fixture
def sample(sample_simulation):
    return sample_simulation


def test_ground_truth_particles_cluster_by_class(sample, tmp_path):
    model, card = load_bundled()
    tomogram = Tomogram(tmp_path / "sample.mrc", sample.tomogram, 10.0, True)
    table = embed(tomogram, sample.particles, model, card, batch=64)
    assert len(table) == 300 and list(table["class_name"]) == list(sample.particles["class_name"])
    latent = table[latent_columns(table)].to_numpy()
    labels = cluster(latent, "kmeans", 9)
    assert adjusted_rand_score(table["class_name"], labels) >= 0.8
    centres = snap_centres(latent, labels)
    assert sorted(centres) == list(range(9)) and all(labels[r] == c for c, r in centres.items())


def test_cancelling_between_batches(sample, tmp_path, monkeypatch):
    model, card = load_bundled()
    encoded: list[int] = []  # boxes the network was given, batch by batch

    def counted(network, boxes, **options):
        encoded.append(len(boxes))
        return encode(network, boxes, **options)

    monkeypatch.setattr(embedding, "encode", counted)
    tomogram = Tomogram(tmp_path / "sample.mrc", sample.tomogram, 10.0, True)
    steps = embed_steps(tomogram, sample.particles, model, card, batch=100)
    assert next(steps) == 100 and sum(encoded) == 100
    assert next(steps) == 200 and sum(encoded) == 200
    steps.close()  # a worker that stops iterating cancels; nothing else is computed
    assert sum(encoded) == 200 < len(sample.particles)
    with pytest.raises(StopIteration):
        next(steps)
    assert sum(encoded) == 200


def test_reading_ahead_and_between_batches_give_the_same_latents(sample, tmp_path):
    """Boxes are cut between encodings on the CPU and a batch ahead beside a GPU, each batch into
    a reused buffer: the results are the same, and equal one batch of everything."""
    model, card = load_bundled()
    tomogram = Tomogram(tmp_path / "sample.mrc", sample.tomogram, 10.0, True)
    picks = sample.particles.iloc[:130]
    tables = [
        embed(tomogram, picks, model, card, batch=batch, error=False, read_ahead=ahead)
        for batch, ahead in ((130, None), (32, False), (32, True))
    ]
    latents = [t[latent_columns(t)].to_numpy() for t in tables]
    for other in latents[1:]:
        np.testing.assert_allclose(other, latents[0], atol=1e-5)


def test_edge_boxes_are_flagged_not_dropped(sample, tmp_path):
    model, card = load_bundled()
    tomogram = Tomogram(tmp_path / "sample.mrc", sample.tomogram, 10.0, True)
    picks = pd.DataFrame({"z": [100.0, 2.0], "y": [200.0, 200.0], "x": [200.0, 399.0]})
    table = embed(tomogram, picks, model, card)
    assert list(table["crosses_edge"]) == [False, True] and len(table) == 2


def test_finer_tomogram_is_resampled_to_the_model(sample):
    """A 5 A/voxel tomogram feeding a 10 A model: boxes of 64 voxels become 32."""
    fine = np.repeat(np.repeat(np.repeat(sample.tomogram[80:120, :200, :200], 2, 0), 2, 1), 2, 2)
    centres = np.array([[40.0, 200.0, 200.0]])
    coarse, _ = extract_boxes(sample.tomogram, centres / 2 + [80, 0, 0], 32)
    resampled, _ = extract_boxes(fine, centres, 32, scale=2.0)
    assert resampled.shape == (1, 32, 32, 32)
    unscaled, _ = extract_boxes(fine, centres, 32)
    correlation = lambda a: np.corrcoef(a.ravel(), coarse.ravel())[0, 1]  # noqa: E731
    assert correlation(resampled) > 0.8 > 0.5 > correlation(unscaled)


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
def test_projections_are_seeded(method):
    latent = np.random.default_rng(0).normal(size=(60, 8))
    first, second = project(latent, method, seed=3), project(latent, method, seed=3)
    assert first.shape == (60, 2)
    np.testing.assert_allclose(first, second)


def test_pick_then_embed_commands(sample, tmp_path):
    """``avae pick`` then ``avae embed`` on the sample: the STAR file's clusters agree with the
    classes of the particles the picks found. The sample holds ten kinds of object, the nine
    classes and gold beads (which the picker finds too), so ten clusters."""
    path = write_tomogram(tmp_path / "sample.mrc", sample.tomogram, 10.0)
    picks = tmp_path / "picks.star"
    assert main(["pick", str(path), "--diameter", "100", "300", "--out", str(picks)]) == 0
    assert "score" in read_particles(picks)
    out = tmp_path / "embedded.star"
    assert main(["embed", str(path), str(picks), "--out", str(out), "--clusters", "10"]) == 0
    table = read_particles(out)
    assert {"latent_0", "pose_0", "embedding_x", "cluster", "cluster_centre"} <= set(table)
    assert table["cluster_centre"].sum() == 10
    truth = sample.particles
    radii = radii_of(truth, 10.0, extent)
    found = match_picks(table[["z", "y", "x"]].to_numpy(), truth[["z", "y", "x"]].to_numpy(), radii)
    assert np.mean(found >= 0) >= 0.9
    clusters = table["cluster"].to_numpy()[found[found >= 0]]
    assert adjusted_rand_score(truth["class_name"][found >= 0], clusters) >= 0.8


@pytest.mark.parametrize(
    ("voxel_size", "message"),
    [
        (
            1.0,
            r"voxel size 1 Å is 10x finer than the model's 10 Å; boxes would be resampled 10-fold",
        ),
        (50.0, r"voxel size 50 Å is 5x coarser than the model's 10 Å; boxes would be enlarged"),
    ],
)
def test_a_voxel_size_far_from_the_models_is_refused_before_extraction(
    tmp_path, monkeypatch, voxel_size, message
):
    from napari_affinity_vae.errors import AffinityVAEError
    from napari_affinity_vae.model import embedding

    def no_extraction(*_args, **_kwargs):
        raise AssertionError("boxes were extracted")

    monkeypatch.setattr(embedding, "extract_boxes", no_extraction)
    model, card = load_bundled()
    tomogram = Tomogram(tmp_path / "TOMO.mrc", np.zeros((64, 64, 64), np.float32), voxel_size, True)
    picks = pd.DataFrame({"z": [32.0], "y": [32.0], "x": [32.0]})
    for run in (
        lambda: embed(tomogram, picks, model, card),
        lambda: next(embed_steps(tomogram, picks, model, card)),
    ):
        with pytest.raises(AffinityVAEError, match=message) as error:
            run()
        text = str(error.value)
        assert text.startswith(f"{tmp_path / 'TOMO.mrc'}: ") and "--voxel-size" in text
        assert "Check the voxel size (a header value of 1.0 is often a placeholder)" in text


def test_within_four_times_the_models_voxel_size_is_embedded(tmp_path):
    model, card = load_bundled()
    volume = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    picks = pd.DataFrame({"z": [20.0], "y": [32.0], "x": [32.0]})
    for voxel_size in (2.5, 40.0):  # 4x finer, 4x coarser
        tomogram = Tomogram(tmp_path / "t.mrc", volume, voxel_size, True)
        assert len(embed(tomogram, picks, model, card)) == 1


def test_embed_command_with_a_placeholder_voxel_size(tmp_path, capsys):
    from conftest import write_mrc

    volume = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    path = write_mrc(tmp_path / "TOMO.mrc", volume, voxel_size=1.0)
    picks = tmp_path / "picks.csv"
    pd.DataFrame({"x": [32.0], "y": [32.0], "z": [20.0]}).to_csv(picks, index=False)
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(path), str(picks), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"avae embed: error: {path}: voxel size 1 Å is 10x finer")
    assert "set it with --voxel-size" in err and not out.exists()
    assert main(["embed", str(path), str(picks), "--out", str(out), "--voxel-size", "10"]) == 0


def test_a_model_whose_weights_hold_nan_is_refused_naming_it(tmp_path, capsys):
    """A checkpoint of a diverged training embedded every particle as NaN: avae embed said
    "asked for 2 clusters of 0 particles", then "12 particles embedded", and wrote empty
    latents; the Embed dock said "0 of 12 particles"."""
    import torch

    from conftest import write_mrc
    from napari_affinity_vae.model.checkpoint import save_checkpoint

    model, card = load_bundled()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    weights, _ = save_checkpoint(model, card, tmp_path / "diverged")
    volume = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    path = write_mrc(tmp_path / "TOMO.mrc", volume, voxel_size=10.0)
    picks = tmp_path / "picks.csv"
    pd.DataFrame({"x": [32.0, 30.0], "y": [32.0, 30.0], "z": [20.0, 20.0]}).to_csv(picks)
    out = tmp_path / "embedded.csv"
    args = ["embed", str(path), str(picks), "--out", str(out), "--model", str(weights)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"avae embed: error: {tmp_path / 'diverged.json'}: gives NaN or infinite" in err
    assert "latents for 2 of 2 particles" in err and not out.exists()


def test_hdbscan_noise_is_no_cluster_centre_and_grey():
    from napari_affinity_vae.colours import NOISE_COLOUR, NOISE_LABEL, colours_for

    latent = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5], [50, -50]])
    labels = np.array([0, 0, 1, 1, -1])
    assert snap_centres(latent, labels) == {0: 0, 1: 2}  # the noise row is nobody's centre
    rgba, legend = colours_for(pd.Series(labels))
    assert [name for name, _ in legend] == ["0", "1", NOISE_LABEL]
    grey = np.array(Color(NOISE_COLOUR).rgba, np.float32)
    np.testing.assert_allclose(rgba[4], grey)
    assert not np.allclose(rgba[:4], grey, atol=0.05)
    np.testing.assert_allclose(rgba[0], rgba[1])
    np.testing.assert_allclose(rgba[2], rgba[3])
    assert not np.allclose(rgba[0], rgba[2])
    # noise takes no colour of the palette: clusters are coloured as with k-means, no noise
    from napari_affinity_vae.colours import CATEGORY_COLOURS

    np.testing.assert_allclose(rgba[0], Color(CATEGORY_COLOURS[0]).rgba, atol=1e-6)
    np.testing.assert_allclose(rgba[2], Color(CATEGORY_COLOURS[1]).rgba, atol=1e-6)


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_many_particles_are_laid_out_through_landmarks(method):
    """Above the landmark count, a sample is laid out as it would be alone and the others land
    among their own cluster's landmarks."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 1200)
    latent = rng.normal(0, 6, (4, 8))[labels] + rng.normal(size=(1200, 8))
    xy = project(latent, method, seed=0, landmarks=300)
    sample = np.sort(np.random.default_rng(0).choice(1200, 300, replace=False))
    np.testing.assert_allclose(xy[sample], project(latent[sample], method, seed=0))
    others = np.setdiff1d(np.arange(1200), sample)
    by_landmarks = KNeighborsClassifier(5).fit(xy[sample], labels[sample])
    assert by_landmarks.score(xy[others], labels[others]) > 0.98


@pytest.mark.parametrize(
    "labels",
    [[0, 0, 1, -1], pd.Categorical([0, 0, 1, -1]), [0.0, 0.0, 1.0, np.nan], ["a", "a", "b", None]],
)
def test_the_particles_without_a_category_are_the_grey_ones(labels):
    from napari_affinity_vae.colours import NOISE_COLOUR, colours_for, is_missing

    values = pd.Series(labels)
    rgba, _ = colours_for(values.astype("Int64") if values.dtype == float else values)
    grey = np.all(np.isclose(rgba, Color(NOISE_COLOUR).rgba), axis=1)
    assert is_missing(values).tolist() == grey.tolist() == [False, False, False, True]
    assert not is_missing(pd.Series(["-1", "a"])).any()  # a label typed "-1" is a label


def test_a_full_disk_is_a_one_line_error_naming_the_file_and_leaves_none_half_written(
    tmp_path, capsys, monkeypatch
):
    """Disk full while writing a STAR file (avae embed) or a tomogram (avae simulate) gave an
    OSError traceback; the File > Save writer said OSError without the file."""
    import mrcfile
    import starfile

    from conftest import write_mrc
    from napari_affinity_vae._writer import write_points
    from napari_affinity_vae.errors import AffinityVAEError

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    volume = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    path = write_mrc(tmp_path / "TOMO.mrc", volume, voxel_size=10.0)
    picks = tmp_path / "picks.csv"
    pd.DataFrame({"x": [32.0], "y": [32.0], "z": [20.0]}).to_csv(picks, index=False)
    out = tmp_path / "embedded.star"
    monkeypatch.setattr(starfile, "write", full_disk)
    assert main(["embed", str(path), str(picks), "--out", str(out), "--pca"]) == 2
    err = capsys.readouterr().err
    assert f"avae embed: error: {out}: cannot be written (No space left on device)" in err
    with pytest.raises(AffinityVAEError, match=r"saved\.star: cannot be written \(No space"):
        write_points(str(tmp_path / "saved.star"), np.zeros((1, 3)), {})
    monkeypatch.setattr(mrcfile, "new", full_disk)
    assert (
        main(["simulate", str(tmp_path / "sim"), "--shape", "40", "64", "64", "--particles", "2"])
        == 2
    )
    err = capsys.readouterr().err
    assert "cannot be written (No space left on device)" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TOMO.mrc", "picks.csv"]


def test_embed_says_how_many_particles_without_angles_it_wrote_with_angles_0(tmp_path, capsys):
    """A STAR file with a tilt missing (nan) came back with tilt 0, another orientation, without
    a word on the command line; the Export dock says so."""
    from conftest import write_mrc

    volume = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    path = write_mrc(tmp_path / "TOMO.mrc", volume, voxel_size=10.0)
    picks = tmp_path / "picks.star"
    header = "".join(
        f"_rln{c} #{i}\n"
        for i, c in enumerate(
            ["CoordinateX", "CoordinateY", "CoordinateZ", "AngleRot", "AngleTilt", "AnglePsi"], 1
        )
    )
    rows = "32 32 20 10 30 5\n30 30 20 20 nan 6\n"
    picks.write_text(f"data_particles\n\nloop_\n{header}{rows}")
    out = tmp_path / "embedded.star"
    assert main(["embed", str(path), str(picks), "--out", str(out), "--pca"]) == 0
    err = capsys.readouterr().err
    assert "avae embed: 1 particle without angles, or with some missing, was written with" in err
    assert main(["embed", str(path), str(picks), "--out", str(tmp_path / "e.csv"), "--pca"]) == 0
    assert "without angles" not in capsys.readouterr().err  # a CSV leaves the cell empty
