"""Word-deletion curves (report section 4 "Performance Metrics", section 6 notes on the replacement modes,
Figures 5-6, 9, 19, 21, 22, 25, 26).

Section 4: "For the correctly classified document, we start by removing top K most relevant input words of
each text and replace it with zero vector [...] or random noise; the average accuracy obtained is the y value
on the graph." For every document ``i`` and every ``k = 0..K`` the first ``min(k, L_i)`` positions of
``orders[i]`` (most relevant first, see :func:`order_by_relevance`) are replaced and the model predicts the
perturbed document (unpadded semantics: padding never changes a document's logits, see
:class:`~xaipipe.models.TextCNN`). ``correct[i, k] = [argmax Φ(X_k) == classes[i]]`` and
``prob[i, k] = softmax(Φ(X_k))[classes[i]]``; the curve of the report is ``correct.mean(0)``. For
``k > L_i`` the whole document is deleted and the value at ``k = L_i`` repeats.

Replacement modes (section 6.1 note and 6.5.1 note):

``zero``      deleted word -> zero vector ("zero vector accuracy"; the LRP paper's choice). One draw.
``gaussian``  deleted word -> ``G ~ N(0, 1)`` clipped to ``[-1, 1]`` per embedding component (the noise of
              section 3.1), ``n_draws`` draws per ``(document, k)`` ("batched noise accuracy").
``neutral``   draw ``d`` puts the embedding of the neutral word ``neutral_ids[d]`` (prepositions and articles,
              :mod:`xaipipe.explain.neutral`) at *every* deleted position; all ``len(neutral_ids)`` draws
              ("batched preposition accuracy"; ``n_draws`` is ignored).

In the batched modes ``correct`` and ``prob`` are averaged over the draws, so ``correct`` is the fraction of
draws that keep the class. All modes return float64 arrays of shape ``(n_docs, K + 1)``.

:func:`misclassified_flip_curves` is the same measurement for misclassified documents (Figures 22 and 26):
the orders come from relevance *for the wrongly predicted class*, and the curve is the fraction of draws
whose prediction differs from that class.

**Seeding (gaussian mode).** Document ``i`` (its index in ``docs``) owns the generator
``numpy.random.default_rng([seed, i])``; its noise is one ``(min(K, L_i), n_draws, E)`` block drawn in C
order, clipped and cast to float32: row ``r`` is the noise for the ``r``-th deleted word (``orders[i][r]``),
draw ``d``. The same noise is used for every ``k`` (common random numbers: step ``k`` deletes one more word of
step ``k - 1``'s perturbed document, which makes the curves smoother than fresh draws per ``k``). The noise
is rank-major, so the curves for ``k <= K'`` do not depend on ``K >= K'``; they do depend on ``n_draws``, on
``seed`` and on the document's index, but not on ``batch_size`` or on which other documents are evaluated
with it. :func:`deletion_curves_naive` draws exactly the same noise.

**Vectorised.** Every perturbed copy ("row") is one ``(doc, k, draw)`` triple: row ``k = 0`` (the
unperturbed document; one row whatever the mode) and ``min(K, L_i) * D`` rows for ``k >= 1`` (``D`` = 1, the
number of draws, or of neutral words); ``k > L_i`` needs no forward pass. Documents are sorted by length, the
rows of all documents are concatenated and cut into forwards of at most ``batch_size`` rows; inside a forward
the copies are built with one gather/``torch.where`` over a ``(rows, width, E)`` tensor -- there is no Python
loop over ``k``, words or draws (only over forwards and, for the per-document noise/rank tables, documents).

**Memory.** One forward holds about ``batch_size * W * (3 E + C) * 4`` bytes (``W`` = longest document of
the forward, ``E`` = embedding size, ``C`` = convolution channels: copies, replacement values, the result of
``torch.where`` and the convolution output): for ``batch_size = 256``, ``W = 1000``, ``E = 300``,
``C = 1280`` that is about 2.2 GB, for ``W = 200`` about 450 MB -- lower ``batch_size`` for long documents.
Per-row results (a float per row) are kept, never the logits of all rows. The result does not depend on
``batch_size`` (up to float rounding of differently shaped convolutions, ~1e-7 in ``prob``).

:func:`deletion_curves_naive` is the looping reference (one unpadded forward per ``(doc, k, draw)``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..explain.base import model_device, pad_embedded
from ..models.fast import DocumentProjection, sequential_replacements, use_fast_path

MODES = ("zero", "gaussian", "neutral")


# --- orders -----------------------------------------------------------------------------------------


def order_by_relevance(relevance: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Word positions by decreasing relevance, ties broken by position (lower first; stable sort; NaN
    relevance last). With ``rng``: a random permutation of the positions instead (the random baseline)."""
    relevance = np.asarray(relevance, dtype=np.float64).reshape(-1)
    if rng is not None:
        return rng.permutation(len(relevance)).astype(np.int64)
    return np.argsort(-relevance, kind="stable").astype(np.int64)


# --- shared machinery (also used by distortion.py) ------------------------------------------------


def clipped_normal(seed: int, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """``N(0, 1)`` clipped to ``[-1, 1]`` (report section 3.1), float32, from the generator of document
    ``index``: ``numpy.random.default_rng([seed, index])``, drawn in C order."""
    rng = np.random.default_rng([int(seed), int(index)])
    return np.clip(rng.standard_normal(shape), -1.0, 1.0).astype(np.float32)


def check_inputs(docs: Sequence[np.ndarray], orders: Sequence[np.ndarray], per_doc: np.ndarray | None,
                 K: int, name: str) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Validate documents (non-empty 1-D ids), orders (distinct positions inside the document, at least
    ``min(K, L)`` of them) and the per-document class/target array. Returns int64 copies and lengths."""
    K = int(K)
    if K < 0:
        raise ValueError(f"{name}: K must be >= 0, got {K}")
    docs = [np.asarray(d, dtype=np.int64) for d in docs]
    orders = [np.asarray(o, dtype=np.int64).reshape(-1) for o in orders]
    if len(orders) != len(docs):
        raise ValueError(f"{name}: {len(orders)} orders for {len(docs)} documents")
    if per_doc is not None and len(per_doc) != len(docs):
        raise ValueError(f"{name}: {len(per_doc)} classes/targets for {len(docs)} documents")
    for i, (d, o) in enumerate(zip(docs, orders)):
        if d.ndim != 1 or len(d) == 0:
            raise ValueError(f"{name}: document {i} must be a non-empty 1-D array of vocabulary ids")
        if len(o) < min(K, len(d)):
            raise ValueError(f"{name}: order {i} has {len(o)} positions, need min(K, len) = {min(K, len(d))}")
        if len(o) and (o.min() < 0 or o.max() >= len(d) or len(np.unique(o)) != len(o)):
            raise ValueError(f"{name}: order {i} must hold distinct positions in [0, {len(d)})")
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    return docs, orders, lengths


def row_layout(counts: np.ndarray, lengths: np.ndarray, first_special: bool,
               n_draws: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``(doc, step, draw)`` of all documents, documents sorted by length (stable), document ``i``
    contributing ``counts[i]`` rows. With ``first_special`` the first row of a document is step 0 / draw 0
    and the others are steps ``1, 2, ...`` with ``n_draws`` draws each; otherwise steps ``0, 1, ...``."""
    perm = np.argsort(lengths, kind="stable")
    c = counts[perm]
    row_doc = np.repeat(perm, c)
    starts = np.cumsum(c) - c
    j = np.arange(int(c.sum()), dtype=np.int64) - np.repeat(starts, c)
    if first_special:
        row_k = np.where(j == 0, 0, 1 + (j - 1) // n_draws)
        row_d = np.where(j == 0, 0, (j - 1) % n_draws)
    else:
        row_k, row_d = j // n_draws, j % n_draws
    return row_doc.astype(np.int64), row_k.astype(np.int64), row_d.astype(np.int64)


@torch.no_grad()
def forward_rows(model: nn.Module, docs: list[np.ndarray], orders: list[np.ndarray], row_doc: np.ndarray,
                 row_k: np.ndarray, row_d: np.ndarray, batch_size: int, keep_top: bool,
                 table: Callable[[int], np.ndarray | torch.Tensor | None],
                 reduce: Callable[[torch.Tensor, np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """Run the perturbed copies described by the rows in forwards of at most ``batch_size`` rows.

    Row ``(i, k, d)``: with ``keep_top=False`` (deletion) the positions ``orders[i][:k]`` are replaced, the
    ``r``-th of them by ``table(i)[r, d]``; with ``keep_top=True`` (distortion) every position *not* in
    ``orders[i][:k]`` is replaced, position ``p`` by ``table(i)[p, d]``. ``table(i)`` is ``(M, D, E)``
    (``M = 1`` broadcasts one vector per draw to every replaced position) or ``None`` (zero vector).
    ``reduce(logits (R, C), row_indices)`` turns a forward's logits into per-row results; returns the list
    of per-row result arrays in row order (each with ``len(row_doc)`` rows; a reduction may return 2-D
    arrays, e.g. the logits themselves).

    TextCNN models take the first-layer fast path (:func:`_forward_rows_fast`): same results up to float
    rounding (``batch_size`` then only bounds the direct path's forwards)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if use_fast_path(model) and len(row_doc):
        fast = _forward_rows_fast(model, docs, orders, row_doc, row_k, row_d, keep_top, table, reduce)
        if fast is not None:
            return fast
    device = model_device(model)
    total = len(row_doc)
    out: list[np.ndarray] | None = None
    was_training = model.training
    model.eval()
    try:
        for b0 in range(0, total, batch_size):
            rows = np.arange(b0, min(b0 + batch_size, total))
            ub, ld = np.unique(row_doc[rows], return_inverse=True)
            bdocs = [docs[i] for i in ub]
            x_b, len_b = pad_embedded(model, bdocs, device)  # (nb, W, E)
            nb, width, emb = x_b.shape
            big = width + 1  # rank of a position outside the order (never among the first k)
            rank = torch.full((nb, width), big, dtype=torch.long, device=device)
            for j, i in enumerate(ub):
                o = torch.as_tensor(orders[i], device=device)
                rank[j, o] = torch.arange(len(o), device=device)
            ld_t = torch.as_tensor(ld, device=device)
            k_t = torch.as_tensor(row_k[rows], device=device)
            d_t = torch.as_tensor(row_d[rows], device=device)
            r_rank = rank[ld_t]  # (R, W)
            pos = torch.arange(width, device=device)
            if keep_top:
                replaced = (r_rank >= k_t[:, None]) & (pos[None, :] < len_b[ld_t][:, None])
            else:
                replaced = r_rank < k_t[:, None]
            x_r = x_b[ld_t]
            tabs = [table(int(i)) for i in ub]
            if tabs[0] is None:
                x_r = x_r.masked_fill(replaced[..., None], 0.0)
            else:
                tabs = [torch.as_tensor(t, dtype=x_b.dtype, device=device) for t in tabs]
                m_max = max(t.shape[0] for t in tabs)
                n_d = max(t.shape[1] for t in tabs)
                tab = torch.zeros(nb, max(m_max, 1), n_d, emb, dtype=x_b.dtype, device=device)
                for j, t in enumerate(tabs):
                    tab[j, : t.shape[0], : t.shape[1]] = t
                idx = (pos[None, :].expand_as(r_rank) if keep_top else r_rank).clamp(max=tab.shape[1] - 1)
                rep = tab[ld_t[:, None], idx, d_t[:, None]]  # (R, W, E)
                x_r = torch.where(replaced[..., None], rep, x_r)
            logits = model.forward_embedded(x_r, len_b[ld_t])
            res = reduce(logits, rows)
            if out is None:
                out = [np.empty((total,) + np.shape(r)[1:], dtype=np.asarray(r).dtype) for r in res]
            for o_arr, r in zip(out, res):
                o_arr[rows] = r
    finally:
        model.train(was_training)
    return out or []


@torch.no_grad()
def _forward_rows_fast(model: nn.Module, docs: list[np.ndarray], orders: list[np.ndarray], row_doc: np.ndarray,
                       row_k: np.ndarray, row_d: np.ndarray, keep_top: bool,
                       table: Callable[[int], np.ndarray | torch.Tensor | None],
                       reduce: Callable[[torch.Tensor, np.ndarray], np.ndarray],
                       draw_chunk_elems: int = 1 << 24) -> list[np.ndarray] | None:
    """:func:`forward_rows` through the first-layer fast path (:mod:`xaipipe.models.fast`).

    Per document, the tap projections are computed once; the rows of one draw are the states after
    0, 1, 2, ... replacements of a sequence (:func:`~xaipipe.models.fast.sequential_replacements`): deletion
    starts from the document and replaces ``orders[i][r]`` by the rank's (or draw's) vector; distortion
    (``keep_top``) starts from the all-replaced document and restores ``orders[i][r]``. Each step touches
    only the ``K`` windows around one word. Returns ``None`` when a distortion order is partial (the
    direct path handles that case)."""
    device = model_device(model)
    if keep_top and any(len(orders[i]) != len(docs[i]) for i in np.unique(row_doc)):
        return None
    total = len(row_doc)
    out: list[np.ndarray] | None = None
    bounds = np.flatnonzero(np.diff(row_doc)) + 1  # rows of one document are contiguous
    for rows in np.split(np.arange(total), bounds):
        i = int(row_doc[rows[0]])
        n = len(docs[i])
        proj = DocumentProjection(model, model.embed(torch.as_tensor(docs[i], device=device)[None])[0])
        ks = np.minimum(row_k[rows], n)  # k >= n: every word replaced (deletion) / kept (distortion)
        steps = int(ks.max())
        pos = torch.as_tensor(orders[i][:steps], device=device)
        tab = table(i)
        n_draws = 1 if tab is None else int(np.shape(tab)[1])
        dtype = proj.x.dtype
        grid = torch.empty(n_draws, steps + 1, proj.c, dtype=dtype, device=device)
        per = max(1, draw_chunk_elems // max(1, (n if keep_top else steps + 1) * proj.k * proj.c))
        for d0 in range(0, n_draws, per):
            d1 = min(n_draws, d0 + per)
            t = q = None  # None: the zero vector (projections 0)
            if tab is not None:
                t = torch.as_tensor(np.asarray(tab)[:, d0:d1], dtype=dtype, device=device)  # (M, Dc, E)
                if not keep_top:
                    q = proj.project(t[:steps]).transpose(0, 1)  # (Dc, M, K, C), rank-major
            if keep_top:  # start: every word replaced; step r restores word orders[i][r]
                if t is None:
                    start = proj.bias.expand(d1 - d0, proj.t, proj.c)
                    add = proj.rows(pos)[None].expand(d1 - d0, -1, -1, -1)
                else:  # the all-noise documents through the model's convolution, one per draw
                    noise = t.expand(n, -1, -1) if t.shape[0] == 1 else t  # (L, Dc, E) per position
                    xn = F.pad(noise.permute(1, 2, 0), (0, proj.n - n))  # (Dc, E, N)
                    start = model.conv(xn).transpose(1, 2)  # (Dc, T, C)
                    add = proj.rows(pos)[None] - proj.project(noise[pos].transpose(0, 1))
            else:  # start: the document; step r replaces word orders[i][r] by rank r's vector
                start = proj.z_full.expand(d1 - d0, -1, -1)
                if q is None:
                    add = -proj.rows(pos)[None].expand(d1 - d0, -1, -1, -1)
                else:
                    qr = q.expand(-1, steps, -1, -1) if q.shape[1] == 1 else q[:, :steps]
                    add = qr - proj.rows(pos)[None]
            grid[d0:d1] = sequential_replacements(proj, pos, start, add)
        sel = grid[torch.as_tensor(row_d[rows], device=device), torch.as_tensor(ks, device=device)]
        logits = model.classifier(model.dropout_in(F.relu(sel)))
        res = reduce(logits, rows)
        if out is None:
            out = [np.empty((total,) + np.shape(r)[1:], dtype=np.asarray(r).dtype) for r in res]
        for o_arr, r in zip(out, res):
            o_arr[rows] = r
    return out or []


def _mode_draws(mode: str, n_draws: int, neutral_ids: list[int] | None) -> int:
    if mode not in MODES:
        raise ValueError(f"unknown replacement mode {mode!r}; known: {', '.join(MODES)}")
    if mode == "zero":
        return 1
    if mode == "neutral":
        if not neutral_ids:
            raise ValueError("mode 'neutral' needs neutral_ids (a non-empty list of vocabulary ids)")
        return len(neutral_ids)
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    return int(n_draws)


@torch.no_grad()
def _neutral_vectors(model: nn.Module, neutral_ids: list[int]) -> torch.Tensor:
    ids = torch.as_tensor(np.asarray(neutral_ids, dtype=np.int64), device=model_device(model))
    return model.embed(ids[None])[0]  # (D, E)


def _replacement_table(model: nn.Module, mode: str, n_draws: int, neutral_ids: list[int] | None, seed: int,
                       K: int, lengths: np.ndarray) -> Callable[[int], np.ndarray | torch.Tensor | None]:
    """Replacement values per document, rank-major ``(M, D, E)`` (see module docstring, Seeding)."""
    if mode == "zero":
        return lambda i: None
    if mode == "neutral":
        vec = _neutral_vectors(model, neutral_ids)[None]  # (1, D, E): same vector at every rank
        return lambda i: vec
    emb = int(model.embedding_dim)
    return lambda i: clipped_normal(seed, i, (min(K, int(lengths[i])), n_draws, emb))


def _softmax_reduce(classes: np.ndarray, row_doc: np.ndarray):
    def reduce(logits: torch.Tensor, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = torch.as_tensor(classes[row_doc[rows]], device=logits.device)
        prob = torch.softmax(logits.double(), dim=1).gather(1, c[:, None])[:, 0]
        correct = logits.argmax(1) == c
        return correct.cpu().numpy().astype(np.float64), prob.cpu().numpy()
    return reduce


def _fill_beyond(curve: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``curve[i, k] = curve[i, last[i]]`` for ``k > last[i]``."""
    k = np.arange(curve.shape[1])
    src = np.minimum(k[None, :], last[:, None])
    return np.take_along_axis(curve, src, axis=1)


def deletion_curves(model: nn.Module, docs: list[np.ndarray], orders: list[np.ndarray], classes: np.ndarray,
                    K: int, mode: str = "zero", n_draws: int = 16, neutral_ids: list[int] | None = None,
                    seed: int = 0, batch_size: int = 256) -> dict:
    """Deletion curves, vectorised (see the module docstring).

    Returns ``{"correct": (n_docs, K+1) float64, "prob": (n_docs, K+1) float64}``: the fraction of draws
    predicting ``classes[i]`` and the mean softmax probability of ``classes[i]`` after deleting the first
    ``min(k, len)`` words of ``orders[i]``."""
    K = int(K)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    docs, orders, lengths = check_inputs(docs, orders, classes, K, "deletion_curves")
    n_d = _mode_draws(mode, n_draws, neutral_ids)
    n = len(docs)
    if n == 0:
        return {"correct": np.zeros((0, K + 1)), "prob": np.zeros((0, K + 1))}
    m = np.minimum(K, lengths)
    row_doc, row_k, row_d = row_layout(1 + m * n_d, lengths, True, n_d)
    table = _replacement_table(model, mode, n_d, neutral_ids, seed, K, lengths)
    correct_r, prob_r = forward_rows(model, docs, orders, row_doc, row_k, row_d, int(batch_size), False, table,
                                     _softmax_reduce(classes, row_doc))
    flat = row_doc * (K + 1) + row_k
    cnt = np.bincount(flat, minlength=n * (K + 1)).reshape(n, K + 1)
    out = {}
    for key, vals in (("correct", correct_r), ("prob", prob_r)):
        s = np.bincount(flat, weights=vals, minlength=n * (K + 1)).reshape(n, K + 1)
        curve = np.divide(s, cnt, out=np.zeros_like(s), where=cnt > 0)
        out[key] = _fill_beyond(curve, m)
    return out


@torch.no_grad()
def deletion_curves_naive(model: nn.Module, docs: list[np.ndarray], orders: list[np.ndarray],
                          classes: np.ndarray, K: int, mode: str = "zero", n_draws: int = 16,
                          neutral_ids: list[int] | None = None, seed: int = 0, batch_size: int = 256) -> dict:
    """Looping reference of :func:`deletion_curves`: per document, per ``k``, per draw one unpadded forward
    (``batch_size`` is ignored). Same noise (see the module docstring, Seeding)."""
    K = int(K)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    docs, orders, lengths = check_inputs(docs, orders, classes, K, "deletion_curves_naive")
    n_d = _mode_draws(mode, n_draws, neutral_ids)
    device = model_device(model)
    correct = np.zeros((len(docs), K + 1))
    prob = np.zeros((len(docs), K + 1))
    was_training = model.training
    model.eval()
    try:
        nvec = _neutral_vectors(model, neutral_ids) if mode == "neutral" else None
        for i, doc in enumerate(docs):
            x = model.embed(torch.as_tensor(doc, device=device)[None])[0]  # (L, E)
            noise = (torch.as_tensor(clipped_normal(seed, i, (min(K, len(doc)), n_d, x.shape[1])), device=device)
                     if mode == "gaussian" else None)
            for k in range(K + 1):
                for d in range(n_d):
                    xd = x.clone()
                    for r in range(min(k, len(doc))):
                        p = orders[i][r]
                        if mode == "zero":
                            xd[p] = 0.0
                        elif mode == "neutral":
                            xd[p] = nvec[d]
                        else:
                            xd[p] = noise[r, d]
                    logits = model.forward_embedded(xd[None])[0]
                    correct[i, k] += float(int(logits.argmax()) == int(classes[i]))
                    prob[i, k] += float(torch.softmax(logits.double(), 0)[int(classes[i])])
    finally:
        model.train(was_training)
    return {"correct": correct / n_d, "prob": prob / n_d}


def misclassified_flip_curves(model: nn.Module, docs: list[np.ndarray], orders: list[np.ndarray],
                              predicted: np.ndarray, K: int, mode: str = "zero", n_draws: int = 16,
                              neutral_ids: list[int] | None = None, seed: int = 0, batch_size: int = 256) -> dict:
    """Figures 22/26: for misclassified documents, delete the words most relevant for the (wrong)
    ``predicted`` class (``orders`` computed with that class as target) and track how often the prediction
    changes. Returns ``{"changed": (n_docs, K+1) float64, "prob": (n_docs, K+1) float64}``: the fraction of
    draws whose prediction differs from ``predicted[i]`` (0 at ``k = 0`` when ``predicted`` are the model's
    predictions) and the mean probability of ``predicted[i]``."""
    res = deletion_curves(model, docs, orders, predicted, K, mode=mode, n_draws=n_draws, neutral_ids=neutral_ids,
                          seed=seed, batch_size=batch_size)
    return {"changed": 1.0 - res["correct"], "prob": res["prob"]}
