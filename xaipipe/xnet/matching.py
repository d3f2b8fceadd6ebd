"""Matching neurons to categories (XNet paper, section 4, Algorithms 1 and 2).

Algorithm 1 (:func:`compute_droplosses`) fills the matrix ``M[j, i]`` = mean over all images of category j
of the loss with neuron i dropped, ``L(θ̂_i, X_j)``: per minibatch it adds the per-example losses of every
(category, neuron) pair, and divides by the number of images of each category at the end (so the result
does not depend on the batch size). Algorithm 2 (:func:`match`) is a bipartite matching that maximises
the total drop-loss, i.e. minimises the sum of ``-M`` (``scipy.optimize.linear_sum_assignment``).

When to match (:data:`MATCHINGS`): ``none`` (neuron j serves category j), ``initial`` (once, before
training, "initial match") and ``em`` (before every epoch, "EM match": the matching chooses which
neurons the next epoch optimises, whose parameters the next matching then sees).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F

from ..errors import XaipipeError
from .droploss import DropLosses, drop_losses

MATCHINGS = ("none", "initial", "em")


@torch.no_grad()
def compute_droplosses(model, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                       n_categories: int) -> DropLosses:
    """Algorithm 1 over a dataset given as ``(x, y, membership)`` batches; ``.matrix`` is ``M``.

    The model is put in eval mode for the pass and back in its previous mode afterwards."""
    was_training = model.training
    model.eval()
    acc: DropLosses | None = None
    try:
        for x, y, a in batches:
            h = model.hidden(x)
            full = F.cross_entropy(model.head(h), y, reduction="none")
            dl = drop_losses(model.head_drop_each, h, y, a, full)
            acc = dl if acc is None else acc.add(dl)
    finally:
        model.train(was_training)
    if acc is None:
        raise XaipipeError("compute_droplosses: the dataset is empty")
    if acc.sums.shape[0] != n_categories:
        raise XaipipeError(f"compute_droplosses: {acc.sums.shape[0]} categories in the data, expected {n_categories}")
    return acc


def match(matrix: np.ndarray | torch.Tensor) -> np.ndarray:
    """Algorithm 2: ``assignment[j]`` = the neuron matched to category j, maximising ``Σ_j M[j, a_j]``.

    ``matrix`` is categories x neurons (at least as many neurons as categories). Ties are broken by
    scipy's solver (deterministic)."""
    m = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] > m.shape[1]:
        raise XaipipeError(f"match: need a categories x neurons matrix with categories <= neurons, got {m.shape}")
    if not np.isfinite(m).all():
        raise XaipipeError("match: the drop-loss matrix has non-finite entries (diverged training?)")
    rows, cols = linear_sum_assignment(-m)
    out = np.empty(m.shape[0], dtype=np.int64)
    out[rows] = cols
    return out


def identity_assignment(n: int) -> np.ndarray:
    """Neuron j serves category j (no matching)."""
    return np.arange(int(n), dtype=np.int64)
