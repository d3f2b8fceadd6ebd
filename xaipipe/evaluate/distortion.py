"""Distortion curves (report section 4, first paragraph: the RDE paper's metric, "how distortion changes
with decreasing the noise and increasing the actual data"; section 6, Figures 11, 15, 20).

For document ``X`` (``L`` words), target ``h = targets[i]`` and ``k = 0..K``: keep the ``k`` most relevant
words (the first ``k`` positions of ``orders[i]``) and fill every other position with Gaussian noise
``G ~ N(0, 1)`` clipped to ``[-1, 1]`` (section 3.1): ``Y = S X + (I - S) G`` with ``S`` the 0/1 diagonal of
the kept words. The distortion between the logits ``Φ(Y)`` and ``Φ(X)`` (Φ = the network output before the
softmax, as in section 3.2) is averaged over ``n_draws`` draws of ``G``, in the three forms of the loss
functions of section 3.2 without the regularisation term:

``l2``  ``0.5 * ||Φ(Y) - Φ(X)||^2``                                  (loss 2, the RDE paper's distortion)
``l1``  ``0.5 * (Φ(Y)_h - Φ(X)_h)^2``                                 (loss 1)
``l4``  ``Σ_{i≠h} (Φ(Y)_i - Φ(X)_i) + Φ(X)_h - Φ(Y)_h``               (loss 4; can be negative)

Returns ``{"l1", "l2", "l4"}``, each a float64 ``(n_docs, K + 1)`` array. For ``k >= L`` every word is kept,
``Y = X`` and all three are exactly 0 (no forward pass is needed; the values are set to 0).

**Seeding.** Document ``i`` owns ``numpy.random.default_rng([seed, i])``; its noise ``G`` is one
``(L_i, n_draws, E)`` block (position-major, C order, clipped, float32): position ``p`` of draw ``d`` gets
``G[p, d]`` for every ``k`` (common random numbers across ``k``: the curve shows the effect of keeping more
words, not of new noise). Independent of ``batch_size``, of ``K`` and of the other documents;
:func:`distortion_curves_naive` draws the same noise.

**Vectorised / memory:** as :func:`~xaipipe.evaluate.deletion.deletion_curves`. A first pass computes the
reference ``Φ(X)`` of all documents (one row each, ``n_docs * C`` floats kept); the second runs the
``(min(K, L_i - 1) + 1) * n_draws`` noisy copies per document (documents sorted by length, cut into forwards
of at most ``batch_size`` rows, each built with one gather/``torch.where``, no Python loop over ``k``, words
or draws) and reduces every forward to three floats per row at once. One forward holds about
``batch_size * W * (3 E + C) * 4`` bytes plus the noise tables of its documents, ``W * n_draws * E * 4``
bytes each. Results are independent of ``batch_size`` up to float rounding of differently shaped
convolutions (~1e-6 relative).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..explain.base import model_device
from .deletion import check_inputs, clipped_normal, forward_rows, row_layout

FORMS = ("l1", "l2", "l4")


def _distortions(fy: torch.Tensor, fx: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
    """``fy``, ``fx`` ``(R, C)`` float64 logits, ``h`` ``(R,)``: the three distortions per row."""
    diff = fy - fx
    dh = diff.gather(1, h[:, None])[:, 0]
    return {"l1": 0.5 * dh ** 2, "l2": 0.5 * (diff ** 2).sum(1), "l4": diff.sum(1) - 2.0 * dh}


def _prepare(docs, orders, targets, K, n_draws, name):
    K = int(K)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    docs, orders, lengths = check_inputs(docs, orders, targets, K, name)
    if int(n_draws) < 1:
        raise ValueError(f"{name}: n_draws must be >= 1, got {n_draws}")
    return K, targets, docs, orders, lengths, int(n_draws)


@torch.no_grad()
def distortion_curves(model: nn.Module, docs: list[np.ndarray], orders: list[np.ndarray], targets: np.ndarray,
                      K: int, n_draws: int = 16, seed: int = 0, batch_size: int = 256) -> dict:
    """Distortion curves, vectorised (see the module docstring)."""
    K, targets, docs, orders, lengths, n_d = _prepare(docs, orders, targets, K, n_draws, "distortion_curves")
    n = len(docs)
    out = {f: np.zeros((n, K + 1)) for f in FORMS}
    if n == 0:
        return out
    # pass 1: the reference logits Φ(X), one unperturbed row per document (a step beyond any rank: every
    # position is kept, also those missing from a partial order)
    ref_doc, _, ref_d = row_layout(np.ones(n, dtype=np.int64), lengths, False, 1)
    keep_all = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    (ref_rows,) = forward_rows(model, docs, orders, ref_doc, keep_all, ref_d, int(batch_size), True,
                               lambda i: None, lambda logits, rows: (logits.double().cpu().numpy(),))
    ref = np.empty_like(ref_rows)
    ref[ref_doc] = ref_rows
    ref_t = torch.as_tensor(ref)
    # pass 2: steps k = 0..top_k[i] (k < L) with n_d noise draws each; k >= L keeps every word: exactly 0
    top_k = np.minimum(K, lengths - 1)
    row_doc, row_k, row_d = row_layout((top_k + 1) * n_d, lengths, False, n_d)
    emb = int(model.embedding_dim)
    targets_t = torch.as_tensor(targets)

    def table(i: int) -> np.ndarray:
        return clipped_normal(seed, i, (int(lengths[i]), n_d, emb))

    def reduce(logits: torch.Tensor, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        di = torch.as_tensor(row_doc[rows])
        dist = _distortions(logits.double().cpu(), ref_t[di], targets_t[di])
        return tuple(dist[f].numpy() for f in FORMS)

    per_row = forward_rows(model, docs, orders, row_doc, row_k, row_d, int(batch_size), True, table, reduce)
    flat = row_doc * (K + 1) + row_k
    for f, vals in zip(FORMS, per_row):
        s = np.bincount(flat, weights=vals, minlength=n * (K + 1)).reshape(n, K + 1)
        out[f] = s / n_d  # every (doc, k < L) has n_d rows; k >= L stays exactly 0
    return out


@torch.no_grad()
def distortion_curves_naive(model: nn.Module, docs: list[np.ndarray], orders: list[np.ndarray],
                            targets: np.ndarray, K: int, n_draws: int = 16, seed: int = 0,
                            batch_size: int = 256) -> dict:
    """Looping reference of :func:`distortion_curves`: per document, per ``k``, per draw one unpadded
    forward of ``Y = S X + (I - S) G`` (``batch_size`` is ignored; ``k >= L`` is computed too)."""
    K, targets, docs, orders, lengths, n_d = _prepare(docs, orders, targets, K, n_draws,
                                                      "distortion_curves_naive")
    device = model_device(model)
    out = {f: np.zeros((len(docs), K + 1)) for f in FORMS}
    was_training = model.training
    model.eval()
    try:
        for i, doc in enumerate(docs):
            x = model.embed(torch.as_tensor(doc, device=device)[None])[0]  # (L, E)
            fx = model.forward_embedded(x[None]).double()
            g = torch.as_tensor(clipped_normal(seed, i, (len(doc), n_d, x.shape[1])), device=device)
            h = torch.tensor([int(targets[i])], device=device)
            for k in range(K + 1):
                for d in range(n_d):
                    y = g[:, d].clone()
                    for r in range(min(k, len(doc))):
                        p = orders[i][r]
                        y[p] = x[p]
                    fy = model.forward_embedded(y[None]).double()
                    for f, v in _distortions(fy, fx, h).items():
                        out[f][i, k] += float(v[0]) / n_d
    finally:
        model.train(was_training)
    return out
