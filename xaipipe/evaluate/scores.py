"""Scores of curves and relevance maps: AOPC, bootstrap summaries, planted-keyword correctness.

**AOPC** (area over the perturbation curve; Samek et al. 2017, "Evaluating the visualization of what a deep
neural network has learned", IEEE TNNLS): for a per-document curve ``f_i(k)``, ``k = 0..K`` (e.g. the
``prob`` or ``correct`` of :func:`~xaipipe.evaluate.deletion.deletion_curves`),

    ``AOPC_i = 1 / (K + 1) * Σ_{k=0..K} (f_i(0) - f_i(k))``

-- averaged over the ``K + 1`` steps as in Samek et al. (the ``k = 0`` term is 0). The mean over documents
is the AOPC of the report's averaged accuracy curves (section 4): larger = the order deletes the decisive
words earlier.

**Bootstrap** (:func:`summarize`): percentile bootstrap over documents. ``n_boot`` resamples of the
``n_docs`` documents with replacement are drawn as one ``(n_boot, n_docs)`` index matrix from
``numpy.random.default_rng(seed)``, turned into a count matrix, and the resampled mean curves are one matrix
product ``counts @ values / n_docs`` (``n_boot * n_docs`` integers of memory, no ``(n_boot, n_docs, K+1)``
array). The interval is the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles of the resampled statistic.

**Planted keywords** (the planted corpus, :mod:`xaipipe.data.planted`, where the truly relevant positions
are known): top-k precision/recall, Spearman correlation and the AUC of relevance against the boolean
ground truth.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .deletion import order_by_relevance


def aopc(curve: np.ndarray) -> np.ndarray:
    """Per-document AOPC of a ``(n_docs, K + 1)`` curve matrix (a 1-D curve counts as one document):
    ``mean_{k=0..K} (curve[:, 0] - curve[:, k])``. Returns ``(n_docs,)`` float64."""
    c = np.atleast_2d(np.asarray(curve, dtype=np.float64))
    if c.shape[1] == 0:
        raise ValueError("aopc: the curve needs at least the k = 0 column")
    return (c[:, :1] - c).mean(axis=1)


def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` how often each of ``n`` documents is drawn in each bootstrap resample (seeded):
    ``counts @ values / n`` are the resampled means of every column of ``values`` at once."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    return counts.reshape(n_boot, n).astype(np.float64)


def _interval(boot: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.quantile(boot, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0], axis=0)
    return lo, hi


def summarize(values: np.ndarray, ks: Sequence[int] = (1, 5, 10), n_boot: int = 1000, seed: int = 0,
              ci: float = 0.95) -> dict:
    """Summary of a ``(n_docs, K + 1)`` matrix of per-document curves, with percentile-bootstrap confidence
    intervals over documents (see the module docstring). JSON-serialisable::

        {"n_docs": int, "K": int, "n_boot": int, "ci": float,
         "mean_curve": [K+1 floats], "curve_lo": [K+1 floats], "curve_hi": [K+1 floats],
         "aopc": float, "aopc_lo": float, "aopc_hi": float,   # mean over documents of aopc(values)
         "at_k": {"1": {"mean", "lo", "hi"}, ...}}           # only the k in ks with 0 <= k <= K

    NaN entries propagate (give curves without NaN)."""
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n, width = v.shape
    if n == 0 or width == 0:
        raise ValueError("summarize: need at least one document and one step")
    if int(n_boot) < 1 or not 0.0 < float(ci) < 1.0:
        raise ValueError("summarize: need n_boot >= 1 and 0 < ci < 1")
    n_boot, ci = int(n_boot), float(ci)
    counts = resample_counts(n, n_boot, seed)
    per_doc_aopc = aopc(v)
    boot_curve = counts @ v / n  # (n_boot, K + 1)
    boot_aopc = counts @ per_doc_aopc / n  # (n_boot,)
    mean_curve = v.mean(axis=0)
    lo, hi = _interval(boot_curve, ci)
    a_lo, a_hi = _interval(boot_aopc, ci)
    at_k = {}
    for k in ks:
        k = int(k)
        if 0 <= k < width:
            at_k[str(k)] = {"mean": float(mean_curve[k]), "lo": float(lo[k]), "hi": float(hi[k])}
    return {
        "n_docs": int(n), "K": int(width - 1), "n_boot": n_boot, "ci": ci,
        "mean_curve": [float(x) for x in mean_curve],
        "curve_lo": [float(x) for x in lo], "curve_hi": [float(x) for x in hi],
        "aopc": float(per_doc_aopc.mean()), "aopc_lo": float(a_lo), "aopc_hi": float(a_hi),
        "at_k": at_k,
    }


def bootstrap_mean(values: np.ndarray, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict:
    """Mean of per-document ``values`` (NaN entries left out) with a percentile-bootstrap interval over the
    documents (the resampling of :func:`summarize`): ``{"mean", "lo", "hi", "n_docs"}``; all None without a
    defined value."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "lo": None, "hi": None, "n_docs": 0}
    s = summarize(v[:, None], ks=(), n_boot=n_boot, seed=seed, ci=ci)
    return {"mean": s["mean_curve"][0], "lo": s["curve_lo"][0], "hi": s["curve_hi"][0], "n_docs": int(v.size)}


def _pair(relevance: np.ndarray, planted: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(relevance, dtype=np.float64).reshape(-1)
    p = np.asarray(planted, dtype=bool).reshape(-1)
    if r.shape != p.shape:
        raise ValueError(f"{name}: {len(r)} relevance values for {len(p)} ground-truth flags")
    return r, p


def topk_correctness(relevance: np.ndarray, planted: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall of the top-``k`` words (by decreasing relevance, ties by position, see
    :func:`~xaipipe.evaluate.deletion.order_by_relevance`) against the boolean ground truth ``planted``.
    ``k`` larger than the document is cut to its length (precision = hits / min(k, L)); recall is NaN when
    nothing is planted, precision NaN when ``k`` is 0."""
    r, p = _pair(relevance, planted, "topk_correctness")
    top = order_by_relevance(r)[: max(int(k), 0)]
    hits = float(p[top].sum())
    precision = hits / len(top) if len(top) else float("nan")
    recall = hits / float(p.sum()) if p.any() else float("nan")
    return precision, recall


def rank_correlation(relevance: np.ndarray, planted: np.ndarray) -> float:
    """Spearman correlation between relevance and the ground-truth indicator (``scipy.stats.spearmanr``;
    ties get average ranks). 0.0 when either is constant (the correlation is undefined) or NaN."""
    r, p = _pair(relevance, planted, "rank_correlation")
    if len(r) < 2 or np.all(r == r[0]) or np.all(p == p[0]):
        return 0.0
    from scipy import stats  # here: scipy.stats takes a second to import, only planted corpora need it

    rho = stats.spearmanr(r, p.astype(np.float64)).statistic
    return 0.0 if not np.isfinite(rho) else float(rho)


def planted_auc(relevance: np.ndarray, planted: np.ndarray) -> float:
    """Probability that a planted word has higher relevance than an unplanted one (ties count 1/2): the
    ROC AUC / normalised Mann-Whitney U, from average ranks. NaN when either class is absent."""
    r, p = _pair(relevance, planted, "planted_auc")
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(r)  # average ranks: a tie between classes contributes 1/2
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
