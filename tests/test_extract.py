"""Cutting boxes around particles: exact blocks inside, flagged and padded at the edges, and
normalised as they are cut."""

from __future__ import annotations

import numpy as np
import pytest

from napari_affinity_vae.particles.extract import extract_boxes
from napari_affinity_vae.volumes import normalise


def test_boxes_inside_and_across_the_edge():
    tomogram = np.arange(20 * 30 * 40, dtype=np.float32).reshape(20, 30, 40)
    boxes, crossed = extract_boxes(tomogram, np.array([[10.2, 15.0, 20.0], [1.0, 15.0, 38.0]]), 8)
    np.testing.assert_array_equal(boxes[0], tomogram[6:14, 11:19, 16:24])
    assert boxes[0][4, 4, 4] == tomogram[10, 15, 20]  # the centre voxel is box // 2
    assert list(crossed) == [False, True]
    inside = tomogram[0:5, 11:19, 34:40]
    np.testing.assert_array_equal(boxes[1][3:, :, :6], inside)
    assert boxes[1][0, 0, 7] == inside.mean()  # outside filled with the inside's mean


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint8])
@pytest.mark.parametrize("threads", [1, 2])
def test_boxes_normalised_as_they_are_cut_equal_boxes_normalised_after(dtype, threads):
    """Cut and normalised a few at a time (here over chunk boundaries, with boxes across the
    edge among them), the boxes are those cut first and normalised as a whole stack."""
    rng = np.random.default_rng(0)
    tomogram = (rng.uniform(0, 200, (40, 50, 60))).astype(dtype)
    centres = rng.uniform(0, [40, 50, 60], (37, 3))  # many across the edge
    raw, crossed = extract_boxes(tomogram, centres, 16)
    assert 0 < crossed.sum() < len(centres)
    expected = normalise(raw)
    for inverted, sign in ((False, 1), (True, -1)):
        out = np.full((len(centres), 16, 16, 16), np.nan, dtype=np.float32)
        boxes, flags = extract_boxes(
            tomogram, centres, 16, normalised=True, inverted=inverted, out=out, threads=threads
        )
        assert boxes is out and list(flags) == list(crossed)
        np.testing.assert_allclose(boxes, sign * expected, atol=2e-6)
    np.testing.assert_allclose(expected.mean(axis=(1, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(expected.std(axis=(1, 2, 3)), 1, atol=1e-5)


def test_no_one_and_two_boxes_and_a_blank_box():
    tomogram = np.zeros((10, 10, 10), dtype=np.uint8)
    tomogram[5:, :, :] = 7
    for centres in (np.zeros((0, 3)), np.array([[2.0, 5, 5]]), np.array([[2.0, 5, 5], [5, 5, 5]])):
        boxes, crossed = extract_boxes(tomogram, centres, 4, normalised=True)
        assert boxes.shape == (len(centres), 4, 4, 4) and len(crossed) == len(centres)
    assert np.all(boxes[0] == 0)  # a flat box stays 0: no division by a zero spread
    np.testing.assert_allclose(boxes[1].std(), 1, atol=1e-6)


def test_resampled_boxes_are_normalised_into_the_buffer():
    rng = np.random.default_rng(1)
    fine = rng.normal(size=(40, 40, 40)).astype(np.float32)
    centres = np.array([[20.0, 20, 20], [15, 25, 20]])
    out = np.empty((2, 8, 8, 8), dtype=np.float32)
    boxes, _ = extract_boxes(fine, centres, 8, scale=2.0, normalised=True, out=out)
    assert boxes is out
    np.testing.assert_allclose(boxes, normalise(extract_boxes(fine, centres, 8, scale=2.0)[0]))


@pytest.mark.parametrize(
    "out",
    [
        np.empty((2, 8, 8, 8), dtype=np.float64),
        np.empty((4, 8, 8, 8), dtype=np.float32)[::2],
        np.empty((3, 8, 8, 8), dtype=np.float32),
    ],
    ids=["float64", "strided", "too-many"],
)
def test_a_buffer_the_boxes_cannot_go_into_is_refused(out):
    """Boxes normalised into a copy of a wrong buffer would leave the buffer raw, unnoticed."""
    tomogram = np.random.default_rng(2).normal(size=(20, 20, 20)).astype(np.float32)
    centres = np.array([[10.0, 10, 10], [8, 12, 10]])
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        extract_boxes(tomogram, centres, 8, normalised=True, out=out)
