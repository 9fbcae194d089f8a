"""The options of ``avae pick`` and ``avae embed``, each checked against what it should change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from napari_affinity_vae.cli import main
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.io.tomogram import open_tomogram, write_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.checkpoint import load_checkpoint, save_checkpoint
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.schema import AXES, EMBEDDING, TOMO_NAME, latent_columns
from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram

SMALL = Simulation(shape=(64, 160, 160), particles=14, snr=0.5, seed=3, name="sim")


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[Path, Path]:
    """A small simulated tomogram and its picks (STAR), written once for the module."""
    folder = tmp_path_factory.mktemp("sim")
    result = simulate_tomogram(SMALL)
    tomogram = write_tomogram(folder / "sim.mrc", result.tomogram, 10.0)
    picks = folder / "picks.star"
    assert main(["pick", str(tomogram), "--diameter", "100", "300", "--out", str(picks)]) == 0
    assert len(read_particles(picks)) >= 8
    return tomogram, picks


def _embedded(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["embed", *args, "--out", str(out)]) == 0
    return out


def _latent(path: Path) -> np.ndarray:
    table = read_particles(path)
    return table[latent_columns(table)].to_numpy()


@pytest.mark.parametrize("suffix", [".csv", ".tbl", ".coords"])
def test_pick_writes_each_format_with_the_same_particles(sim, tmp_path, suffix):
    tomogram, star = sim
    out = tmp_path / f"picks{suffix}"
    assert main(["pick", str(tomogram), "--diameter", "100", "300", "--out", str(out)]) == 0
    back = read_particles(out, voxel_size=10.0, tomogram_shape=SMALL.shape)
    expected = read_particles(star)
    np.testing.assert_allclose(back[list(AXES)], expected[list(AXES)], atol=0.51)


def test_pick_inverted_finds_on_white_protein_what_it_finds_on_black(sim, tmp_path):
    tomogram, star = sim
    white = write_tomogram(tmp_path / "white.mrc", -open_tomogram(tomogram).data, 10.0)
    out = tmp_path / "white.star"
    args = ["pick", str(white), "--diameter", "100", "300", "--out", str(out)]
    assert main([*args, "--inverted"]) == 0
    expected = read_particles(star)[list(AXES)].to_numpy()
    np.testing.assert_allclose(read_particles(out)[list(AXES)], expected, atol=1e-3)
    assert main([*args, "--overwrite"]) == 0  # not inverted: the picks are elsewhere
    assert len(read_particles(out)) != len(expected) or not np.allclose(
        read_particles(out)[list(AXES)], expected, atol=1
    )


@pytest.mark.parametrize("suffix", [".csv", ".tbl", ".coords"])
def test_embed_reads_and_writes_each_format(sim, tmp_path, suffix):
    tomogram, star = sim
    path = tmp_path / f"picks{suffix}"
    coords = write_particles(read_particles(star), path, voxel_size=10, tomogram_shape=SMALL.shape)
    out = _embedded(tmp_path, f"embedded{suffix}", str(tomogram), str(coords), "--pca")
    reference = _embedded(tmp_path, "embedded.star", str(tomogram), str(star), "--pca")
    if suffix == ".csv":  # the one format with room for every column
        np.testing.assert_allclose(_latent(out), _latent(reference), atol=1e-4)
    back = read_particles(out, voxel_size=10.0, tomogram_shape=SMALL.shape)
    np.testing.assert_allclose(back[list(AXES)], read_particles(reference)[list(AXES)], atol=0.51)


def test_embed_tomo_name_chooses_one_tomograms_particles(sim, tmp_path, capsys):
    tomogram, star = sim
    ours = read_particles(star)
    other = ours.head(3).assign(**{TOMO_NAME: "other"})
    both = write_particles(
        pd.concat([ours, other], ignore_index=True),
        tmp_path / "both.star",
        voxel_size=10.0,
    )
    args = [str(tomogram), str(both)]
    assert main(["embed", *args, "--out", str(tmp_path / "x.star")]) == 2
    assert "2 tomograms" in capsys.readouterr().err
    out = _embedded(tmp_path, "sim.star", *args, "--tomo-name", "sim", "--pca")
    table = read_particles(out)
    assert len(table) == len(ours) and set(table[TOMO_NAME]) == {"sim"}
    out = _embedded(tmp_path, "other.star", *args, "--tomo-name", "other", "--pca")
    np.testing.assert_allclose(read_particles(out)[list(AXES)], other[list(AXES)], atol=1e-3)


def test_embed_and_project_take_binning_for_a_tomogram_with_its_coordinates(sim, tmp_path, capsys):
    """RELION 4 coordinates in unbinned pixels of a tomogram binned by 4, as RELION writes them."""
    import starfile

    tomogram, star = sim
    picks = starfile.read(star)
    unbinned = tmp_path / "unbinned.star"
    columns = [f"rlnCoordinate{a}" for a in "XYZ"]
    starfile.write({"particles": picks.assign(**{c: picks[c] * 4 for c in columns})}, unbinned)
    args = [str(tomogram), str(unbinned)]
    assert main(["project", *args]) == 2
    assert "lie outside the tomogram" in capsys.readouterr().err  # --binning forgotten
    assert main(["project", *args, "--binning", "4"]) == 0
    assert f"{len(picks)} particles, 64 x 160 x 160 voxels" in capsys.readouterr().out
    out = _embedded(tmp_path, "binned.star", *args, "--binning", "4", "--pca")
    reference = _embedded(tmp_path, "reference.star", str(tomogram), str(star), "--pca")
    np.testing.assert_allclose(_latent(out), _latent(reference), atol=1e-4)
    written = starfile.read(out)  # in the input's unbinned pixels again
    np.testing.assert_allclose(written[columns], picks[columns] * 4, atol=1e-3)


def test_embed_model_uses_the_checkpoint_given(sim, tmp_path):
    tomogram, star = sim
    model, card = load_bundled()
    torch.manual_seed(0)
    with torch.no_grad():
        for weights in model.parameters():
            weights.add_(0.05 * torch.randn_like(weights))
    weights, _ = save_checkpoint(model, card, tmp_path / "mine")
    out = _embedded(tmp_path, "mine.star", str(tomogram), str(star), "--model", str(weights))
    mine, mine_card = load_checkpoint(weights)
    expected = embed(open_tomogram(tomogram), read_particles(star), mine, mine_card)
    np.testing.assert_allclose(_latent(out), expected[latent_columns(expected)], atol=1e-4)
    bundled = _embedded(tmp_path, "bundled.star", str(tomogram), str(star))
    assert np.abs(_latent(out) - _latent(bundled)).max() > 0.01


def test_embed_inverted_sees_white_protein_as_the_model_expects(sim, tmp_path):
    tomogram, star = sim
    white = write_tomogram(tmp_path / "white.mrc", -open_tomogram(tomogram).data, 10.0)
    black = _embedded(tmp_path, "black.star", str(tomogram), str(star), "--pca")
    inverted = _embedded(tmp_path, "inv.star", str(white), str(star), "--pca", "--inverted")
    np.testing.assert_allclose(_latent(inverted), _latent(black), atol=1e-4)
    plain = _embedded(tmp_path, "plain.star", str(white), str(star), "--pca")
    assert np.abs(_latent(plain) - _latent(black)).max() > 0.1


def test_embed_projections_differ_and_each_is_seeded(sim, tmp_path):
    tomogram, star = sim

    def layout(name: str, *args: str) -> np.ndarray:
        path = _embedded(tmp_path, name, str(tomogram), str(star), *args)
        return read_particles(path)[list(EMBEDDING)].to_numpy()

    tsne = layout("tsne.star", "--tsne")
    np.testing.assert_allclose(layout("tsne2.star", "--tsne"), tsne)
    assert not np.allclose(layout("pca.star", "--pca"), tsne, atol=1e-3)
    umap = layout("umap.star")  # UMAP by default
    assert not np.allclose(umap, tsne, atol=1e-3)
    np.testing.assert_allclose(layout("umap2.star", "--umap"), umap)
    assert not np.allclose(layout("umap3.star", "--seed", "1"), umap, atol=1e-3)


def test_embed_error_adds_the_reconstruction_error_and_changes_no_latent(sim, tmp_path):
    tomogram, star = sim
    plain = read_particles(_embedded(tmp_path, "plain.star", str(tomogram), str(star), "--pca"))
    out = _embedded(tmp_path, "error.star", str(tomogram), str(star), "--pca", "--error")
    with_error = read_particles(out)
    assert "reconstruction_error" not in plain  # the decoder did not run
    assert (with_error["reconstruction_error"] > 0).all()
    np.testing.assert_allclose(_latent(out), plain[latent_columns(plain)], atol=1e-6)
