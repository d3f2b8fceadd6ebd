"""Paired comparisons of explanation methods over the same documents (issue #17, item 3).

Every variant, and the random order, is evaluated on the same documents in the same order
(``documents.parquet``), so two variants can be compared document by document. For a curve (e.g.
``accuracy/zero``) each document ``i`` gets a score per variant -- its AOPC
(:func:`~xaipipe.evaluate.scores.aopc`; for ``misclassified_changed`` the gain ``-AOPC``, so that higher is
better for every curve) -- and the comparison of variant ``a`` with reference ``b`` is about the
per-document differences ``d_i = score_a(i) - score_b(i)`` (positive: ``a`` better). Their mean is the
difference of the two AOPC values in ``ranking.csv``.

* **Interval** (:func:`paired_bootstrap`): percentile bootstrap of the mean difference. The document
  indices are resampled once (one ``(n_boot, n_docs)`` index matrix from ``default_rng(seed)``, the
  scheme of :func:`~xaipipe.evaluate.scores.summarize`) and the same resample is applied to both variants
  -- and to every comparison over the same documents. Not adjusted for multiplicity.
* **p-value** (:func:`sign_flip_pvalues`): two-sided paired sign-flip permutation test of "no
  difference" (under H0 the sign of each ``d_i`` is exchangeable): statistic ``T = Σ d_i``,
  ``p = P(|T*| >= |T|)`` over random sign vectors. Exact (all ``2**n`` sign vectors) when ``2**n`` does not
  exceed the number of permutations, otherwise Monte Carlo with ``p = (1 + #{|T*| >= |T|}) / (1 + n_perm)``
  (never 0, a valid p-value; Phipson & Smyth 2010). Chosen over a bootstrap p-value because it is valid for
  few documents (the bootstrap's is anti-conservative there), exact where it can be, and gives exactly 1
  for two identical variants. Its resolution is ``1 / (n_perm + 1)``: :func:`needed_permutations` raises
  ``n_perm`` so that a difference can survive the correction below. With ``n`` documents the smallest
  possible p is ``2 / 2**n``: four documents can never give a significant difference.
* **Correction** (:func:`holm`): Holm's step-down adjustment over all comparisons of one table (one
  ``(dataset, model)``). It controls the family-wise error rate: a difference marked ``*`` (adjusted
  p < alpha) is real with probability 1 - alpha for the whole table at once -- the strong reading the
  report's verdicts ("greedy is best") need -- and, unlike Bonferroni, it is uniformly more powerful at no
  extra assumption (it holds under any dependence between the comparisons, which share documents).
  Benjamini-Hochberg would control only the expected share of false marks.

Documents outside a curve's set (NaN in ``per_doc.parquet``: the misclassified documents for the accuracy
curves and vice versa) are left out of that curve's comparisons.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .scores import _interval, aopc, resample_counts

#: per-document columns of ``per_doc.parquet`` whose score is the gain -AOPC (rising curves)
GAIN_CURVES = ("misclassified_changed",)


def per_doc_scores(per_doc: pd.DataFrame, key: str) -> np.ndarray:
    """Per-document score of the curve ``key`` (``"accuracy/zero"``) of one variant: AOPC, or the gain
    ``-AOPC`` for the rising curves of :data:`GAIN_CURVES`; NaN for documents outside the curve's set.
    ``(n_docs,)`` float64."""
    rows = [np.asarray(r, dtype=np.float64) for r in per_doc[key]]
    if not rows:
        return np.zeros(0)
    curves = np.vstack(rows)
    out = np.full(len(rows), np.nan)
    ok = np.isfinite(curves).all(axis=1)
    if ok.any():
        out[ok] = aopc(curves[ok])
    return -out if key.split("/")[0] in GAIN_CURVES else out


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): with the ``m`` defined p-values sorted ascending,
    ``p_adj(j) = max_{i <= j} min(1, (m - i + 1) p(i))``. NaN entries stay NaN and do not count in ``m``."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    if (p[ok] < 0).any() or (p[ok] > 1).any():
        raise ValueError("holm: p-values must lie in [0, 1]")
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def needed_permutations(n_tests: int, alpha: float = 0.05, minimum: int = 10000) -> int:
    """Monte-Carlo sign flips so that the smallest attainable p, ``1 / (n_perm + 1)``, is at most a tenth of
    the first Holm threshold ``alpha / n_tests`` (a real difference is not lost to the resolution)."""
    return max(int(minimum), int(math.ceil(10.0 * max(int(n_tests), 1) / float(alpha))))


def _groups(d: np.ndarray) -> dict[tuple, list[int]]:
    """Columns of ``d`` grouped by their set of defined documents."""
    groups: dict[tuple, list[int]] = {}
    for j in range(d.shape[1]):
        groups.setdefault(tuple(np.flatnonzero(np.isfinite(d[:, j]))), []).append(j)
    return groups


def sign_flip_pvalues(d: np.ndarray, n_perm: int = 10000, seed: int = 0, chunk: int = 4096) -> np.ndarray:
    """Two-sided paired sign-flip permutation p-value of each column of ``d`` (``(n_docs, n_tests)``
    per-document differences, NaN = document not in that comparison; see the module docstring). NaN for a
    column without documents. Exact when ``2**n <= n_perm`` (``n`` defined documents)."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    out = np.full(d.shape[1], np.nan)
    for rows, cols in _groups(d).items():
        n = len(rows)
        if n == 0:
            continue
        x = d[np.asarray(rows)][:, cols]  # (n, t)
        t_obs = np.abs(x.sum(axis=0))
        tol = 1e-9 * np.maximum(1.0, np.abs(x).sum(axis=0))  # float ties count as ties
        exact = n < 63 and 2 ** n <= int(n_perm)
        count = np.zeros(len(cols))
        total = 2 ** n if exact else int(n_perm)
        rng = np.random.default_rng(seed)
        for start in range(0, total, chunk):
            size = min(chunk, total - start)
            if exact:
                codes = np.arange(start, start + size, dtype=np.int64)[:, None]
                signs = 1.0 - 2.0 * ((codes >> np.arange(n, dtype=np.int64)) & 1)
            else:
                signs = 1.0 - 2.0 * rng.integers(0, 2, size=(size, n))
            count += (np.abs(signs @ x) >= t_obs - tol).sum(axis=0)
        out[cols] = count / total if exact else (1.0 + count) / (1.0 + total)
    return np.minimum(out, 1.0)


def paired_bootstrap(d: np.ndarray, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, percentile-bootstrap interval and number of documents of each column of ``d`` (per-document
    differences, NaN = not in the comparison): ``(mean, lo, hi, n)``. One resample of the documents per
    set of documents, shared by every column over that set (and so by both variants of a pair)."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    t = d.shape[1]
    mean, lo, hi, n_docs = (np.full(t, np.nan) for _ in range(4))
    for rows, cols in _groups(d).items():
        n = len(rows)
        n_docs[cols] = n
        if n == 0:
            continue
        x = d[np.asarray(rows)][:, cols]
        boot = resample_counts(n, int(n_boot), seed) @ x / n
        mean[cols] = x.mean(axis=0)
        lo[cols], hi[cols] = _interval(boot, ci)
    return mean, lo, hi, n_docs


def paired_tests(d: np.ndarray, n_boot: int = 1000, n_perm: int | None = None, seed: int = 0,
                 alpha: float = 0.05, ci: float = 0.95) -> pd.DataFrame:
    """Every column of ``d`` (per-document differences) tested as one family: ``diff`` (mean), ``lo``,
    ``hi`` (bootstrap interval), ``n_docs``, ``p`` (sign-flip), ``p_adj`` (Holm over the columns) and
    ``significant`` (``p_adj < alpha``). ``n_perm=None``: :func:`needed_permutations` for the family."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    n_perm = needed_permutations(d.shape[1], alpha) if n_perm is None else int(n_perm)
    mean, lo, hi, n_docs = paired_bootstrap(d, n_boot=n_boot, seed=seed, ci=ci)
    p = sign_flip_pvalues(d, n_perm=n_perm, seed=seed)
    p_adj = holm(p)
    return pd.DataFrame({"diff": mean, "lo": lo, "hi": hi, "n_docs": n_docs, "p": p, "p_adj": p_adj,
                         "significant": np.isfinite(p_adj) & (p_adj < alpha)})


def compare_to_references(per_doc: dict[str, pd.DataFrame], references: Iterable[str], keys: Iterable[str],
                          n_boot: int = 1000, n_perm: int | None = None, seed: int = 0,
                          alpha: float = 0.05) -> pd.DataFrame:
    """Paired comparisons of every variant of ``per_doc`` (variant -> its ``per_doc.parquet``) with each
    reference in ``references`` present there, for every curve ``key`` of ``keys`` both have; one family
    (Holm over all rows). Long format, one row per (variant, reference, key): ``variant, reference, key,
    diff, lo, hi, n_docs, p, p_adj, significant`` with ``diff = score(variant) - score(reference)``."""
    names = list(per_doc)
    ids = None
    for v, df in per_doc.items():
        if ids is None:
            ids = list(df["id"]) if "id" in df.columns else None
        elif "id" in df.columns and list(df["id"]) != ids:
            raise ValueError(f"per_doc of {v!r} lists other documents than {names[0]!r}: rerun the evaluate rules")
    refs = [r for r in references if r in per_doc]
    rows, cols = [], []
    for key in keys:
        for r in refs:
            if key not in per_doc[r].columns:
                continue
            ref_score = per_doc_scores(per_doc[r], key)
            for v in names:
                if v == r or key not in per_doc[v].columns:
                    continue
                rows.append({"variant": v, "reference": r, "key": key})
                cols.append(per_doc_scores(per_doc[v], key) - ref_score)
    if not rows:
        return pd.DataFrame(columns=["variant", "reference", "key", "diff", "lo", "hi", "n_docs", "p", "p_adj",
                                     "significant"])
    tests = paired_tests(np.column_stack(cols), n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
    return pd.concat([pd.DataFrame(rows), tests], axis=1)


def column_name(key: str) -> str:
    """``accuracy/zero`` -> ``aopc_accuracy_zero`` (``gain_...`` for the rising curves), as in ranking.csv."""
    curve, mode = key.split("/")
    return f"{'gain' if curve in GAIN_CURVES else 'aopc'}_{curve}_{mode}"


def wide_columns(tests: pd.DataFrame) -> pd.DataFrame:
    """The long comparisons of :func:`compare_to_references` as ranking columns, one row per variant:
    ``<score>_vs_<ref>`` (difference), ``_ci``, ``_p_adj`` and ``_sig`` (``*`` when significant)."""
    out: dict[str, dict] = {}
    for t in tests.itertuples(index=False):
        base = f"{column_name(t.key)}_vs_{t.reference}"
        row = out.setdefault(t.variant, {"variant": t.variant})
        row[base] = round(float(t.diff), 4)
        row[f"{base}_ci"] = f"[{t.lo:.3f}, {t.hi:.3f}]"
        row[f"{base}_p_adj"] = float(f"{t.p_adj:.3g}")
        row[f"{base}_sig"] = "*" if t.significant else ""
    return pd.DataFrame(list(out.values()))


def ranking_comparisons(per_doc: dict[str, pd.DataFrame], references: Iterable[str], n_boot: int = 1000,
                        n_perm: int | None = None, seed: int = 0, alpha: float = 0.05
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparisons of one ``(dataset, model)`` as two families, each Holm-corrected on its own: the
    deletion curves (every ``curve/mode`` key but distortion: ``ranking.csv``) and the distortion curves
    (``distortion_ranking.csv``). Each is :func:`compare_to_references`'s long table with a first column
    ``table`` (``ranking`` / ``distortion_ranking``); together they are ``comparisons.csv``."""
    keys = sorted({c for df in per_doc.values() for c in df.columns if "/" in c})
    refs = list(references)
    stats = dict(n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
    out = []
    for table, family in (("ranking", [k for k in keys if not k.startswith("distortion/")]),
                          ("distortion_ranking", [k for k in keys if k.startswith("distortion/")])):
        df = compare_to_references(per_doc, refs, family, **stats)
        df.insert(0, "table", table)
        out.append(df)
    return out[0], out[1]
