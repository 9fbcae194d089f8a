"""The template-free picker's mechanics: chunk seams, contrast, margins, counts, thresholds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_affinity_vae.particles import picking
from napari_affinity_vae.particles.picking import PickSettings, pick
from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram

SETTINGS = PickSettings(diameter_min=100, diameter_max=300, voxel_size=10.0)


@pytest.fixture(scope="module")
def clear():
    return simulate_tomogram(
        Simulation(
            shape=(64, 256, 256),
            particles=30,
            snr=1.0,
            seed=4,
            classes=("ribosome", "proteasome", "atp_synthase", "elongated_dimer"),
        )
    )


def test_chunks_give_the_same_picks_as_one_pass(clear, monkeypatch):
    whole = pick(clear.tomogram, SETTINGS)
    monkeypatch.setattr(picking, "CHUNK_VOXELS", 32 * 128 * 10)  # many thin slabs along y
    steps, done = picking.pick_steps(clear.tomogram, SETTINGS), []
    with pytest.raises(StopIteration) as finished:
        while True:
            done.append(next(steps))
    chunked = finished.value.value
    chunks = picking.chunk_count(clear.tomogram.shape, SETTINGS)
    assert sorted(set(done)) == list(range(chunks + 1)) and done == sorted(done)
    assert len(done) > 10 * chunks  # pauses inside each chunk, where a Cancel takes effect
    assert chunks > 1 and len(chunked) == len(whole)
    # the same picks; sub-voxel positions agree to a thousandth of a voxel at the seams
    np.testing.assert_allclose(chunked[["z", "y", "x"]], whole[["z", "y", "x"]], atol=1e-3)
    assert chunked.attrs["threshold"] == pytest.approx(whole.attrs["threshold"], rel=1e-4)


def test_inverted_contrast(clear):
    dark = pick(clear.tomogram, SETTINGS)
    bright = pick(-clear.tomogram, PickSettings(100, 300, 10.0, inverted=True))
    np.testing.assert_allclose(bright[["z", "y", "x"]], dark[["z", "y", "x"]])


def test_margin_count_and_threshold(clear):
    picks = pick(clear.tomogram, PickSettings(100, 300, 10.0, margin=200.0))
    coords = picks[["z", "y", "x"]].to_numpy()
    assert np.all(coords >= 20) and np.all(coords <= np.array(clear.tomogram.shape) - 21)
    assert len(pick(clear.tomogram, PickSettings(100, 300, 10.0, max_count=5))) == 5
    everything = pick(clear.tomogram, PickSettings(100, 300, 10.0, threshold=-np.inf))
    assert len(everything) > len(pick(clear.tomogram, SETTINGS))
    assert list(everything["score"]) == sorted(everything["score"], reverse=True)


@pytest.mark.parametrize("seed", [0, 5])
def test_accuracy_at_the_sample_snr(seed):
    """Recall and precision against the ground truth at the sample's SNR (0.1 per tilt), with
    vesicle membranes and gold beads present; a pick matches a particle within half its radius.
    Seed 0 is the sample tomogram itself."""
    from napari_affinity_vae._sample_data import SAMPLE
    from napari_affinity_vae.analysis.metrics import pick_recall_precision
    from napari_affinity_vae.particles.matching import radii_of
    from napari_affinity_vae.simulate.molecules import extent

    sample = simulate_tomogram(replace(SAMPLE, seed=seed))
    picks = pick(sample.tomogram, SETTINGS)
    truth = sample.particles
    radii = radii_of(truth, SAMPLE.voxel_size, extent)
    recall, precision = pick_recall_precision(
        picks[["z", "y", "x"]].to_numpy(), truth[["z", "y", "x"]].to_numpy(), radii
    )
    assert recall >= 0.9 and precision >= 0.8, (recall, precision)


def test_one_diameter_finds_that_particle(clear):
    """Diameter min = max (ribosomes only, 250 A) still band-passes: most ribosomes are found."""
    from napari_affinity_vae.particles.matching import match_picks

    picks = pick(clear.tomogram, PickSettings(250, 250, 10.0))
    ribosomes = clear.particles[clear.particles["class_name"] == "ribosome"]
    found = match_picks(
        picks[["z", "y", "x"]].to_numpy(),
        ribosomes[["z", "y", "x"]].to_numpy(),
        np.full(len(ribosomes), 15.0),
    )
    assert np.mean(found >= 0) >= 0.75
