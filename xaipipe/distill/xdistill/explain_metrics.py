"""Explanation consistency between teacher and student (XDistillation section IV-B, Tables IV and V).

Both metrics compare the superpixel representations (:mod:`.superpixels`) of a teacher's and a student's
explanation of the **same input and the same predicted class**, on the same SLIC segments.

``explanation_mse`` (Table IV, "scoring distance"): the mean squared difference of the two image-sized
superpixel maps, ``MSE(x) = 1/(HW) sum_p (M(x)[p] - T(x)[p])^2`` (so a superpixel counts in proportion
to its area), averaged over the pairs whose teacher and student predictions agree.

``sign_overlap`` (Table V, "scoring explanations"): take the ``k`` most important superpixels of each
explanation (largest ``|value|``); on the superpixels in both top-k sets count those where
``h(x) = 1[sign(M(x)) = sign(T(x))]``, and normalise by ``k``:
``score(x) = |{s in top_k(T) ∩ top_k(M) : sign(M_s) = sign(T_s)}| / k``, averaged over the inputs that
teacher *and* student classify correctly (the paper's Figure 11 uses ``k = 2``). A superpixel ranked
important by only one model, or with opposite signs, scores 0.
"""

from __future__ import annotations

import numpy as np

from ...errors import XaipipeError
from .superpixels import segment_means


def explanation_mse(teacher_maps: np.ndarray, student_maps: np.ndarray) -> np.ndarray:
    """Per-pair MSE ``(N,)`` of two stacks of ``(N, H, W)`` maps."""
    t, s = np.asarray(teacher_maps, np.float64), np.asarray(student_maps, np.float64)
    if t.shape != s.shape:
        raise XaipipeError(f"explanation maps differ in shape: {t.shape} vs {s.shape}")
    return ((s - t) ** 2).reshape(len(t), -1).mean(1)


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``|values|`` (ties: lower index first)."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    order = np.lexsort((np.arange(len(v)), -v))
    return order[:min(k, len(v))]


def sign_overlap(teacher_values: np.ndarray, student_values: np.ndarray, k: int) -> float:
    """Share of the ``k`` top superpixels that both explanations select with the same sign."""
    if k < 1:
        raise XaipipeError(f"top_k must be >= 1, got {k}")
    t, s = np.asarray(teacher_values), np.asarray(student_values)
    if t.shape != s.shape:
        raise XaipipeError(f"superpixel value vectors differ in length: {t.shape} vs {s.shape}")
    both = np.intersect1d(top_k(t, k), top_k(s, k))
    agree = np.sign(t[both]) == np.sign(s[both])
    return float(agree.sum()) / float(min(k, len(t)))


def batch_sign_overlap(teacher_maps: np.ndarray, student_maps: np.ndarray, segments: np.ndarray,
                       k: int) -> np.ndarray:
    """:func:`sign_overlap` per image ``(N,)`` from image-sized superpixel maps and their segments."""
    return np.array([sign_overlap(segment_means(t, seg), segment_means(s, seg), k)
                     for t, s, seg in zip(teacher_maps, student_maps, segments)])


def consistency(teacher: dict, student: dict, y: np.ndarray, segments: np.ndarray, k: int,
                explainers: list[str]) -> dict:
    """Table IV and V entries of one student: ``{explainer: {mse, n_mse, sign_overlap, n_overlap}}``.

    ``teacher``/``student`` hold ``pred`` and ``maps_<explainer>`` arrays over the same images."""
    same = teacher["pred"] == student["pred"]
    correct = (teacher["pred"] == y) & (student["pred"] == y)
    out = {}
    for name in explainers:
        key = f"maps_{name}"
        if key not in teacher or key not in student:
            continue
        t, s = teacher[key], student[key]
        mse = explanation_mse(t[same], s[same]) if same.any() else np.array([])
        ov = batch_sign_overlap(t[correct], s[correct], segments[correct], k) if correct.any() else np.array([])
        out[name] = {"mse": float(mse.mean()) if len(mse) else float("nan"), "n_mse": int(same.sum()),
                     "sign_overlap": float(ov.mean()) if len(ov) else float("nan"), "n_overlap": int(correct.sum())}
    return out


__all__ = ["batch_sign_overlap", "consistency", "explanation_mse", "sign_overlap", "top_k"]
