"""Cutting boxes around particles: exact blocks inside, flagged and padded at the edges."""

from __future__ import annotations

import numpy as np

from napari_affinity_vae.particles.extract import extract_boxes


def test_boxes_inside_and_across_the_edge():
    tomogram = np.arange(20 * 30 * 40, dtype=np.float32).reshape(20, 30, 40)
    boxes, crossed = extract_boxes(tomogram, np.array([[10.2, 15.0, 20.0], [1.0, 15.0, 38.0]]), 8)
    np.testing.assert_array_equal(boxes[0], tomogram[6:14, 11:19, 16:24])
    assert boxes[0][4, 4, 4] == tomogram[10, 15, 20]  # the centre voxel is box // 2
    assert list(crossed) == [False, True]
    inside = tomogram[0:5, 11:19, 34:40]
    np.testing.assert_array_equal(boxes[1][3:, :, :6], inside)
    assert boxes[1][0, 0, 7] == inside.mean()  # outside filled with the inside's mean
