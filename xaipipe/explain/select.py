"""Which documents get explained: the same set for every method (report section 4: "about 7 randomly
chosen correctly classified texts of each of the 20 classes"), plus a misclassified set (Figures 22, 26).

Output columns: ``id, set ("correct" | "misclassified"), tokens (known words only, as the model sees
them), ids (vocabulary ids), label, pred`` and, for the planted corpus, ``planted`` (ground truth per
known token).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .base import predict_docs


def select_documents(model: torch.nn.Module, test: pd.DataFrame, vocab: list[str], per_class: int,
                     n_misclassified: int, seed: int, max_len: int | None = None,
                     model_max_len: int | None = None) -> pd.DataFrame:
    """``max_len``: explain only the first ``max_len`` known words (``explain.max_doc_len``); ``model_max_len``:
    the length the model was trained and tested on (its ``max_len``), the cap of a "whole document", so
    that correct/misclassified agree with the model's test accuracy and one 58,000-word post does not
    cost every method a thousand times a typical document."""
    caps = [int(c) for c in (max_len, model_max_len) if c]
    max_len = min(caps) if caps else None
    w2i = {w: i for i, w in enumerate(vocab)}
    keep_tokens, keep_ids, keep_planted, ok = [], [], [], []
    has_planted = "planted" in test.columns
    for r in test.itertuples(index=False):
        toks = list(r.tokens)
        mask = [t in w2i for t in toks]
        known = [t for t, m in zip(toks, mask) if m]
        if max_len:
            known = known[:max_len]
        keep_tokens.append(known)
        keep_ids.append(np.array([w2i[t] for t in known], dtype=np.int64))
        if has_planted:
            keep_planted.append([bool(p) for p, m in zip(r.planted, mask) if m][: len(known)])
        ok.append(len(known) > 0)
    ok = np.array(ok)
    df = test.loc[ok, ["id", "label"]].reset_index(drop=True)
    df["tokens"] = [t for t, o in zip(keep_tokens, ok) if o]
    df["ids"] = [t for t, o in zip(keep_ids, ok) if o]
    if has_planted:
        df["planted"] = [t for t, o in zip(keep_planted, ok) if o]
    with torch.inference_mode():
        df["pred"] = predict_docs(model, list(df["ids"]))
    rng = np.random.default_rng(seed)
    picks = []
    correct = df[df["pred"] == df["label"]]
    for c in sorted(df["label"].unique()):
        cand = correct.index[correct["label"] == c].to_numpy()
        picks += [(i, "correct") for i in np.sort(rng.choice(cand, size=min(per_class, len(cand)), replace=False))]
    wrong = df.index[df["pred"] != df["label"]].to_numpy()
    picks += [(i, "misclassified") for i in np.sort(rng.choice(wrong, size=min(n_misclassified, len(wrong)),
                                                                replace=False))]
    out = df.loc[[i for i, _ in picks]].reset_index(drop=True)
    out.insert(1, "set", [s for _, s in picks])
    out["ids"] = [a.tolist() for a in out["ids"]]
    return out
