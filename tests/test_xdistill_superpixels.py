"""The superpixel representation of XDistillation (section III-A1): SLIC segments, per-superpixel sums."""

from __future__ import annotations

import numpy as np
import pytest

from xaipipe.distill.xdistill.superpixels import (batch_superpixel_maps, paint, segment_means, segment_sums,
                                                   slic_segments, superpixel_map)
from xaipipe.errors import XaipipeError

# a 3 x 4 image cut into three superpixels by hand
SEGMENTS = np.array([[0, 0, 1, 1],
                     [0, 2, 2, 1],
                     [2, 2, 2, 1]])
ATTR = np.array([[0.1, -0.2, 0.5, 0.0],
                 [0.3, 1.0, -1.0, 0.25],
                 [0.0, 0.5, 0.5, -0.75]])


def test_segment_sums_by_hand():
    # segment 0: 0.1 - 0.2 + 0.3; segment 1: 0.5 + 0.0 + 0.25 - 0.75; segment 2: 1.0 - 1.0 + 0.0 + 0.5 + 0.5
    np.testing.assert_allclose(segment_sums(ATTR, SEGMENTS), [0.2, 0.0, 1.0])
    np.testing.assert_allclose(segment_means(ATTR, SEGMENTS), [0.2 / 3, 0.0, 1.0 / 5])


def test_superpixel_map_paints_each_pixel_with_its_segment_sum():
    want = np.array([[0.2, 0.2, 0.0, 0.0],
                     [0.2, 1.0, 1.0, 0.0],
                     [1.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(superpixel_map(ATTR, SEGMENTS), want, atol=1e-7)
    # the sum over all channels: (C, H, W) and (H, W, C) layouts give the same map
    rgb = np.stack([ATTR, 2 * ATTR, -ATTR])  # channel sum = 2 * ATTR
    np.testing.assert_allclose(superpixel_map(rgb, SEGMENTS), 2 * want, atol=1e-6)
    np.testing.assert_allclose(superpixel_map(np.moveaxis(rgb, 0, -1), SEGMENTS), 2 * want, atol=1e-6)
    # the map keeps the total attribution and is constant on every segment
    m = superpixel_map(ATTR, SEGMENTS)
    np.testing.assert_allclose(segment_means(m, SEGMENTS), segment_sums(ATTR, SEGMENTS), atol=1e-6)
    np.testing.assert_allclose(paint(np.array([7.0, 8.0, 9.0]), SEGMENTS)[2], [9, 9, 9, 8])
    stack = batch_superpixel_maps(np.stack([ATTR, -ATTR]), np.stack([SEGMENTS, SEGMENTS]))
    np.testing.assert_allclose(stack[1], -want, atol=1e-7)
    with pytest.raises(XaipipeError, match="does not match"):
        superpixel_map(np.zeros((4, 4)), SEGMENTS)


def test_slic_labels_are_consecutive_and_follow_the_image():
    img = np.zeros((28, 28))
    img[4:24, 10:18] = 1.0  # a bright bar
    seg = slic_segments(img, n_segments=19, compactness=0.1)
    assert seg.shape == (28, 28) and seg.dtype == np.int32
    labels = np.unique(seg)
    np.testing.assert_array_equal(labels, np.arange(len(labels)))
    assert 5 <= len(labels) <= 30
    # no superpixel mixes bar and background (SLIC clusters colour and position)
    for s in labels:
        vals = np.unique(img[seg == s])
        assert len(vals) == 1
    rgb = np.random.default_rng(0).random((32, 32, 3))
    assert slic_segments(rgb, n_segments=19, compactness=10).shape == (32, 32)
    assert slic_segments(np.moveaxis(rgb, -1, 0), n_segments=19, compactness=10).shape == (32, 32)
