"""Explanation-consistency metrics of XDistillation Tables IV (MSE) and V (top-k sign overlap)."""

from __future__ import annotations

import numpy as np
import pytest

from xaipipe.distill.xdistill.explain_metrics import (batch_sign_overlap, consistency, explanation_mse,
                                                      sign_overlap, top_k)
from xaipipe.distill.xdistill.superpixels import paint
from xaipipe.errors import XaipipeError


def test_sign_overlap_on_a_hand_example():
    t = np.array([0.5, -0.4, 0.1, 0.0])
    # student top-2 by |value| = {2, 0}; teacher top-2 = {0, 1}; shared {0}, same sign -> 1 of k = 2
    assert sign_overlap(t, np.array([0.6, 0.3, -0.9, 0.0]), k=2) == 0.5
    # shared {0, 1}: superpixel 0 has opposite signs, 1 the same -> 1 / 2
    assert sign_overlap(t, np.array([-0.6, -0.5, 0.0, 0.0]), k=2) == 0.5
    assert sign_overlap(t, 2 * t, k=2) == 1.0 and sign_overlap(t, -t, k=3) == 0.0
    assert sign_overlap(t, np.array([0.6, 0.3, -0.9, 0.0]), k=1) == 0.0  # top-1: 0 vs 2
    # k larger than the number of superpixels: normalised by the number there is
    assert sign_overlap(t, t, k=10) == 1.0
    np.testing.assert_array_equal(top_k(np.array([0.1, -0.3, 0.3, 0.0]), 2), [1, 2])  # ties: lower index
    with pytest.raises(XaipipeError):
        sign_overlap(t, t, k=0)


def test_mse_and_batch_overlap_on_superpixel_maps():
    seg = np.array([[0, 0, 1], [2, 2, 1]])
    tv, sv = np.array([1.0, -2.0, 0.5]), np.array([1.0, 2.0, 0.0])
    t, s = paint(tv, seg)[None], paint(sv, seg)[None]
    # per pixel: (0, 0, 16, 0.25, 0.25, 16) / 6
    np.testing.assert_allclose(explanation_mse(t, s), [32.5 / 6])
    # top-2 teacher {1, 0}, student {1, 0}: superpixel 1 disagrees -> 0.5
    np.testing.assert_allclose(batch_sign_overlap(t, s, seg[None], k=2), [0.5])


def test_consistency_uses_agreeing_and_correct_images():
    seg = np.tile(np.array([[0, 1], [2, 2]]), (3, 1, 1))
    t_maps = np.stack([paint(v, seg[0]) for v in ([1.0, -1, 0], [0.5, 0.2, 0], [1.0, 0, 0])])
    s_maps = np.stack([paint(v, seg[0]) for v in ([1.0, -1, 0], [-0.5, 0.2, 0], [0.0, 0, 1])])
    teacher = {"pred": np.array([0, 1, 2]), "maps_shap": t_maps}
    student = {"pred": np.array([0, 1, 0]), "maps_shap": s_maps}
    y = np.array([0, 2, 2])
    c = consistency(teacher, student, y, seg, k=1, explainers=["shap", "lime"])
    assert set(c) == {"shap"}
    # agreeing predictions: images 0 and 1; MSE 0 and (1^2 * 1 pixel) / 4
    assert c["shap"]["n_mse"] == 2 and c["shap"]["mse"] == pytest.approx(0.125)
    # both correct: image 0 only, identical maps -> 1
    assert c["shap"]["n_overlap"] == 1 and c["shap"]["sign_overlap"] == 1.0
