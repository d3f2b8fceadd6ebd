"""The TF-IDF + linear reference beside every text teacher (issue "Explanations that are right").

A model that learned nothing explains nothing, so every text dataset gets a simple, strong bag-of-words
classifier trained on the same split in the same run: TF-IDF features of the prepared tokens (sublinear
term frequency, L2-normalised rows, words seen in at least ``min_df`` training documents) and a linear SVM
(scikit-learn's ``LinearSVC``). Like the CNNs it holds out the same stratified validation part of the
training split (``val_fraction``, same seed, :func:`xaipipe.train.val_split`), picks ``C`` from the grid
``C`` on it and reports the test accuracy of that model; ``val_fraction: 0`` takes the first ``C`` and
trains on the whole split.

Outputs: ``metrics.json`` (the keys of a model's ``metrics.json`` that the summary reads: accuracy,
errors, per-class accuracy, confusion matrix; plus the chosen ``C`` and the validation accuracy of every
``C``) and ``top_features.csv`` (per class the ``top_features`` words of largest weight: on the planted
corpus these are its keywords, a check of the data that needs no neural network).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from .io import atomic_path, write_json

log = logging.getLogger(__name__)

DEFAULTS = {"C": [0.1, 1.0, 10.0], "min_df": 1, "sublinear_tf": True, "val_fraction": 0.1, "top_features": 10}


def _identity(tokens):
    return tokens


def train_reference(train: pd.DataFrame, test: pd.DataFrame, classes: list[str], cfg: dict, seed: int,
                    out_metrics: str, out_features: str) -> dict:
    """Fit TF-IDF + LinearSVC on ``train`` (columns ``tokens``, ``label``), evaluate on ``test``; write the
    outputs (module docstring) and return the metrics."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from .train import classification_metrics, val_split

    cfg = {**DEFAULTS, **{k: v for k, v in (cfg or {}).items() if v is not None}}
    grid = [float(c) for c in (cfg["C"] if isinstance(cfg["C"], (list, tuple)) else [cfg["C"]])]
    t0 = time.perf_counter()
    y = train["label"].to_numpy()
    tr, va = val_split(y, float(cfg["val_fraction"]), seed)
    docs = [list(t) for t in train["tokens"]]

    def features(idx):
        vec = TfidfVectorizer(analyzer=_identity, lowercase=False, min_df=int(cfg["min_df"]),
                              sublinear_tf=bool(cfg["sublinear_tf"]))
        return vec, vec.fit_transform([docs[i] for i in idx])

    vec, x_tr = features(tr)
    scores = {}
    best = None
    for c in grid:
        clf = LinearSVC(C=c, random_state=seed, max_iter=5000).fit(x_tr, y[tr])
        score = float((clf.predict(vec.transform([docs[i] for i in va])) == y[va]).mean()) if len(va) else None
        scores[str(c)] = score
        if best is None or (score is not None and score > best[0]):
            best = (score, c, clf)
        if not len(va):
            break
    _, c_best, clf = best
    pred = clf.predict(vec.transform([list(t) for t in test["tokens"]]))
    metrics = classification_metrics(test["label"].to_numpy(), pred, classes)
    metrics.update({"arch": "tfidf_linear_svm", "C": c_best, "val_accuracy_by_C": scores,
                    "n_features": int(x_tr.shape[1]), "n_train": int(len(tr)), "n_val": int(len(va)),
                    "seed": seed, "n_parameters": int(np.asarray(clf.coef_).size + np.asarray(clf.intercept_).size)})
    seconds = time.perf_counter() - t0
    words = np.asarray(vec.get_feature_names_out())
    coef = np.asarray(clf.coef_)
    if coef.shape[0] == 1:  # binary: one weight vector, positive = class 1
        coef = np.vstack([-coef[0], coef[0]])
    k = int(cfg["top_features"])
    rows = []
    for ci, name in enumerate(classes):
        top = np.argsort(-coef[ci], kind="stable")[:k]
        rows += [{"class": name, "rank": r + 1, "word": str(words[j]), "weight": float(coef[ci, j])}
                 for r, j in enumerate(top)]
    with atomic_path(out_features) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
    write_json(out_metrics, metrics)  # no wall time inside: metrics.json is byte-identical between runs
    log.info("TF-IDF + linear SVM (C=%g): test accuracy %.4f (%d errors of %d) in %.1fs", c_best,
             metrics["accuracy"], metrics["n_errors"], metrics["n_test"], seconds)
    return metrics
