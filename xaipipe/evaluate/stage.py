"""The evaluation stage for one (dataset, model, method variant): deletion curves in every replacement
mode, the misclassified variant, distortion curves, summary scores with bootstrap intervals and, on the
planted corpus, correctness against the known relevant words (report sections 4 and 6).

Outputs: ``curves.csv`` (long format: ``curve, mode, k, mean, lo, hi``), ``summary.json`` (AOPC and value at
k = 1, 5, 10 with confidence intervals per curve; correctness scores) and ``per_doc.parquet`` (every
document's curves, ``id`` then one column per ``curve/mode`` -- ``accuracy/zero``, ``probability/gaussian``,
``misclassified_changed/neutral``, ``distortion/l2``, ... -- each cell the list over k = 0..K, NaN for the
documents outside the curve's set; the paired comparisons of :mod:`.compare` read it).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from ..errors import check_finite
from ..io import atomic_path, write_json
from .deletion import deletion_curves, misclassified_flip_curves, order_by_relevance
from .distortion import distortion_curves
from .scores import bootstrap_mean, planted_auc, rank_correlation, summarize, topk_correctness

log = logging.getLogger(__name__)

RANDOM = "random"


def evaluate_method(model, docs: pd.DataFrame, rel: pd.DataFrame | None, cfg: dict, neutral: list[int],
                    seed: int) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """``rel=None`` evaluates the random-order baseline."""
    K = int(cfg.get("K", 20))
    draws = int(cfg.get("n_draws", 16))
    ks = tuple(cfg.get("ks", (1, 5, 10)))
    n_boot = int(cfg.get("bootstrap", 1000))
    bs = int(cfg.get("batch_size", 256))
    ids = [np.asarray(x, dtype=np.int64) for x in docs["ids"]]
    if rel is not None:
        if list(rel["id"]) != list(docs["id"]):
            raise ValueError("relevance file and documents file list different documents; rerun the explain rule")
        for doc_id, r in zip(rel["id"], rel["relevance"]):
            check_finite(np.asarray(r, dtype=float), f"the relevance of document {doc_id!r}",
                         "The relevance file is broken: delete it and rerun the explain rule")
        orders = [order_by_relevance(np.asarray(r, dtype=float)) for r in rel["relevance"]]
        targets = rel["target"].to_numpy()
    else:
        rng = np.random.default_rng(seed)
        orders = [order_by_relevance(np.zeros(len(x)), rng) for x in ids]
        targets = docs["pred"].to_numpy()
    sets = docs["set"].to_numpy()
    correct = sets == "correct"
    wrong = sets == "misclassified"
    rows, summary, per_doc = [], {"K": K, "n_draws": draws, "n_correct": int(correct.sum()),
                                  "n_misclassified": int(wrong.sum()), "curves": {}}, {"id": list(docs["id"])}
    t0 = time.perf_counter()

    def add(curve: str, mode: str, values: np.ndarray, mask: np.ndarray) -> None:
        if not mask.any():
            return
        check_finite(values[mask], f"the {curve}/{mode} curve", "The model's outputs on the modified documents are "
                     "not finite: check the model; nothing was written")
        s = summarize(values[mask], ks=ks, n_boot=n_boot, seed=seed)
        summary["curves"][f"{curve}/{mode}"] = s
        for k, (m, lo, hi) in enumerate(zip(s["mean_curve"], s["curve_lo"], s["curve_hi"])):
            rows.append({"curve": curve, "mode": mode, "k": k, "mean": m, "lo": lo, "hi": hi})

    sel = lambda m: [x for x, keep in zip(ids, m) if keep]  # noqa: E731
    osel = lambda m: [x for x, keep in zip(orders, m) if keep]  # noqa: E731
    for mode in cfg.get("modes", ["zero", "gaussian", "neutral"]):
        kw = dict(K=K, mode=mode, n_draws=draws, neutral_ids=neutral, seed=seed, batch_size=bs)
        full_acc = np.full((len(ids), K + 1), np.nan)
        full_prob = np.full((len(ids), K + 1), np.nan)
        if correct.any():
            out = deletion_curves(model, sel(correct), osel(correct), docs["label"].to_numpy()[correct], **kw)
            full_acc[correct], full_prob[correct] = out["correct"], out["prob"]
            add("accuracy", mode, full_acc, correct)
            add("probability", mode, full_prob, correct)
        if wrong.any():
            flip = misclassified_flip_curves(model, sel(wrong), osel(wrong), targets[wrong], **kw)
            full_flip = np.full((len(ids), K + 1), np.nan)
            full_flip[wrong] = flip["changed"]
            add("misclassified_changed", mode, full_flip, wrong)
            per_doc[f"misclassified_changed/{mode}"] = [r.tolist() for r in full_flip]
        per_doc[f"accuracy/{mode}"] = [r.tolist() for r in full_acc]
        per_doc[f"probability/{mode}"] = [r.tolist() for r in full_prob]
    if cfg.get("distortion", True) and correct.any():
        dist = distortion_curves(model, sel(correct), osel(correct), targets[correct], K,
                                 n_draws=draws, seed=seed, batch_size=bs)
        for form, values in dist.items():
            full = np.full((len(ids), K + 1), np.nan)
            full[correct] = values
            add("distortion", form, full, correct)
            per_doc[f"distortion/{form}"] = [r.tolist() for r in full]
    if "planted" in docs.columns:
        summary["correctness"] = correctness(docs, rel, orders, ks, n_boot=n_boot, seed=seed)
    log.info("evaluated %d documents in %.1fs", len(ids), time.perf_counter() - t0)
    return pd.DataFrame(rows), summary, pd.DataFrame(per_doc)


def correctness(docs: pd.DataFrame, rel: pd.DataFrame | None, orders: list[np.ndarray], ks, n_boot: int = 1000,
                seed: int = 0) -> dict:
    """Relevance against the planted keywords on the correctly classified documents: per metric the mean over
    documents with a percentile-bootstrap interval (``{"mean", "lo", "hi", "n_docs"}``, see
    :func:`~xaipipe.evaluate.scores.bootstrap_mean`). ``auc``: ROC-AUC of relevance against the planted flags
    (ties count 1/2: 0.5 = chance, 1 = every planted word above every other word); ``hit@1``: the top word is
    planted; ``precision@k``/``recall@k`` of the top-k words; ``spearman``. The random baseline has no
    relevance values: its order's ranks stand in, so it scores about 0.5 AUC."""
    mask = (docs["set"] == "correct").to_numpy()
    if rel is not None:
        rels = [np.asarray(r, dtype=float) for r in rel["relevance"]]
    else:  # the random baseline has no relevance values: use the ranks its order implies
        rels = []
        for o in orders:
            r = np.empty(len(o))
            r[o] = np.arange(len(o), 0, -1)
            rels.append(r)
    planted = [np.asarray(p, dtype=bool) for p in docs["planted"]]
    pairs = [(r, p) for r, p, m in zip(rels, planted, mask) if m]
    per_doc: dict[str, list[float]] = {"auc": [planted_auc(r, p) for r, p in pairs],
                                       "hit@1": [topk_correctness(r, p, 1)[0] if p.any() else float("nan")
                                                 for r, p in pairs]}
    for k in ks:
        pr = [topk_correctness(r, p, k) for r, p in pairs]
        per_doc[f"precision@{k}"] = [a for a, _ in pr]
        per_doc[f"recall@{k}"] = [b for _, b in pr]
    per_doc["spearman"] = [rank_correlation(r, p) for r, p in pairs]
    return {name: bootstrap_mean(np.asarray(v, dtype=float), n_boot=n_boot, seed=seed)
            for name, v in per_doc.items()}


def _nanmean(values: list[float]) -> float | None:
    """Mean over the defined values (documents without planted words give NaN recall/AUC)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def write_evaluation(curves: pd.DataFrame, summary: dict, per_doc: pd.DataFrame, out_curves: str,
                     out_summary: str, out_per_doc: str) -> None:
    with atomic_path(out_curves) as tmp:
        curves.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_per_doc) as tmp:
        per_doc.to_parquet(tmp, index=False)
    write_json(out_summary, summary)
