"""The explanation stage: explain the selected documents of one (dataset, model) with one configured
method and write one file with every word's relevance.

Output ``relevance.parquet``: ``id, set, tokens, relevance (list of float, one per token), target, label,
pred`` (+ ``planted`` on the planted corpus); ``params.json``: the method, its parameters, the
lambda/extra values each document reported, and the runtime per document.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import check_finite
from ..io import atomic_path, write_json
from .base import get_explainer
from .neutral import neutral_ids

log = logging.getLogger(__name__)


def method_params(method_cfg: dict, vocab: list[str], seed: int) -> tuple[str, dict]:
    """Split a configured variant (``{"method": name, **params}``) into the registered name and the
    explainer's keyword arguments; resolve neutral words to vocabulary ids."""
    cfg = dict(method_cfg)
    name = cfg.pop("method")
    words = cfg.pop("neutral_words", None)
    if cfg.get("noise") == "neutral":
        cfg["neutral_ids"] = neutral_ids(vocab, words)
    cfg.setdefault("seed", seed)  # every explainer accepts a seed (convention in base.py)
    return name, cfg


def explain_documents(model, docs: pd.DataFrame, vocab: list[str], method_cfg: dict, seed: int,
                      target: str = "pred", chunk: int = 8) -> tuple[pd.DataFrame, dict]:
    name, params = method_params(method_cfg, vocab, seed)
    explainer = get_explainer(name, model, **params)
    ids = [np.asarray(x, dtype=np.int64) for x in docs["ids"]]
    targets = docs["pred" if target == "pred" else "label"].astype(int).tolist()
    doc_ids = list(docs["id"])
    rels, secs, extras = [], [], []
    t0 = time.perf_counter()
    for i in tqdm(range(0, len(ids), chunk), desc=f"explain {method_cfg.get('method')}", mininterval=2.0):
        for j, e in enumerate(explainer.attribute(ids[i:i + chunk], targets[i:i + chunk]), start=i):
            check_finite(e.relevance, f"the relevance of document {doc_ids[j]!r} from method {name}",
                         "The model's outputs or gradients on this document, or the method's parameters, give NaN or "
                         "infinite values: check the model and the parameters; nothing was written")
            rels.append(e.relevance.astype(np.float64).tolist())
            secs.append(e.seconds)
            extras.append(e.extra)
    total = time.perf_counter() - t0
    out = docs.drop(columns=["ids"]).copy()
    out["relevance"] = rels
    out["target"] = targets
    info = {"method": name, "params": {k: v for k, v in params.items() if k != "neutral_ids"},
            "n_neutral_ids": len(params.get("neutral_ids", [])), "n_docs": len(ids), "target": target,
            "extra": extras if any(extras) else None}
    # wall times go to timing.json (write_outputs), so that relevance and params files are byte-identical
    info["_timing"] = {"seconds_total": round(total, 3), "seconds_per_doc": round(total / max(1, len(ids)), 4),
                       "seconds": [round(s, 4) for s in secs]}
    log.info("%s: %d documents in %.1fs (%.3fs per document)", name, len(ids), total, total / max(1, len(ids)))
    return out, info


def write_heatmaps(rel: pd.DataFrame, folder: str | Path, n: int, title: str) -> list[str]:
    """Render the first ``n`` correctly classified and the first misclassified documents (HTML + PNG)."""
    from ..render import render_png, write_html

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    picks = pd.concat([rel[rel["set"] == "correct"].head(n), rel[rel["set"] == "misclassified"].head(1)])
    written = []
    for r in picks.itertuples(index=False):
        r_arr = np.asarray(r.relevance, dtype=float)
        signed = bool((r_arr < 0).any())
        stem = folder / f"{r.set}_{str(r.id).replace('/', '_')}"
        t = f"{title} — doc {r.id} ({r.set}), target class {r.target}"
        write_html(stem.with_suffix(".html"), list(r.tokens), r_arr, signed=signed, title=t)
        render_png(stem.with_suffix(".png"), list(r.tokens), r_arr, signed=signed, title=t)
        written.append(str(stem))
    return written


def write_outputs(rel: pd.DataFrame, info: dict, out_relevance: str, out_params: str,
                  out_timing: str | None = None) -> None:
    info = dict(info)
    timing = info.pop("_timing", None)
    with atomic_path(out_relevance) as tmp:
        rel.to_parquet(tmp, index=False)
    write_json(out_params, info)
    if out_timing:
        write_json(out_timing, timing or {})
