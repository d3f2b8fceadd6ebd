"""Classification terms: cross-entropy and the softmax squared error."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from . import LossInputs, register_term


@register_term("ce")
def ce(inputs: LossInputs, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of ``logits`` with ``labels``: the batch mean, or with per-sample ``weights`` the
    weighted mean ``Σ w_b CE_b / Σ w_b``. A study that has the per-sample losses already (XNet needs them
    for its drop-losses) hands them as ``extra["ce_rows"]``; the term is then their mean."""
    rows = inputs.extra.get("ce_rows")
    if rows is not None:
        return rows.mean() if inputs.weights is None else (rows * inputs.weights).sum() / inputs.weights.sum()
    logits, labels = inputs.need("logits", "ce"), inputs.need("labels", "ce")
    if inputs.weights is None:
        return F.cross_entropy(logits, labels, label_smoothing=float(label_smoothing))
    w = inputs.weights
    return (F.cross_entropy(logits, labels, reduction="none", label_smoothing=float(label_smoothing)) * w).sum() / w.sum()


@register_term("softmax_mse")
def softmax_mse(inputs: LossInputs) -> torch.Tensor:
    """``Σ_c (softmax(z)_c − onehot(y)_c)²``, averaged over the batch (LeNet's original loss)."""
    logits, labels = inputs.need("logits", "softmax_mse"), inputs.need("labels", "softmax_mse")
    return F.mse_loss(torch.softmax(logits, 1), F.one_hot(labels, logits.shape[1]).to(logits.dtype),
                      reduction="sum") / len(labels)
