"""Summary tables across datasets and models, with the source report's values beside ours."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import atomic_path, read_json

# Test accuracies published in the main report (000_72da690358235a51.txt): sections 2.1, 2.2, 7.1-7.3.
PUBLISHED_ACCURACY = {
    ("ng20", "teacher"): 0.7851,
    ("ng20", "student"): 0.585,
    ("agnews", "teacher"): 0.9112,
    ("agnews", "student"): 0.8108,
    ("mnist", "teacher"): 0.9925,  # 75 errors
    ("mnist", "student"): 0.9868,  # Table 1, Ex-1: 132 errors
}


def models_table(metric_paths: list[str], out_csv: str | Path, out_md: str | Path,
                 reference_paths: list[str] | None = None) -> pd.DataFrame:
    """One row per model (``results/<dataset>/models/<model>/metrics.json``) and per TF-IDF reference
    (``results/<dataset>/reference/metrics.json``, model ``tfidf_reference``), with the published accuracy
    and, for the models of a dataset with a reference, ``vs_tfidf``: the accuracy minus the reference's (a
    CNN far below a bag-of-words model has not learned the task)."""
    rows = []
    ref_acc: dict[str, float] = {}
    for p in reference_paths or []:
        dataset = Path(p).parts[-3]
        m = read_json(p)
        ref_acc[dataset] = m["accuracy"]
        rows.append({"dataset": dataset, "model": "tfidf_reference", "arch": m.get("arch"),
                     "accuracy": round(m["accuracy"], 4), "published_accuracy": None, "difference": None,
                     "errors": m["n_errors"], "n_test": m["n_test"], "parameters": m.get("n_parameters"),
                     "train_seconds": None, "epochs": None, "comparable_with_paper": True})
    for p in metric_paths:
        parts = Path(p).parts
        dataset, model = parts[-4], parts[-2]
        m = read_json(p)
        timing = Path(p).with_name("timing.json")
        m.setdefault("train_seconds", read_json(timing).get("train_seconds") if timing.is_file() else None)
        pub = PUBLISHED_ACCURACY.get((dataset, model))
        rows.append({
            "dataset": dataset, "model": model, "arch": m.get("arch"),
            "accuracy": round(m["accuracy"], 4), "published_accuracy": pub,
            "difference": None if pub is None else round(m["accuracy"] - pub, 4),
            "errors": m["n_errors"], "n_test": m["n_test"], "parameters": m["n_parameters"],
            "train_seconds": m.get("train_seconds"), "epochs": m.get("epochs_run"),
            "comparable_with_paper": m.get("comparable_with_paper", True),
        })
    comparable = {r["dataset"]: r["comparable_with_paper"] for r in rows if r["model"] != "tfidf_reference"}
    for r in rows:
        if r["model"] == "tfidf_reference":  # e.g. AG News re-split offline: the reference is not comparable either
            r["comparable_with_paper"] = comparable.get(r["dataset"], True)
        ref = ref_acc.get(r["dataset"])
        r["vs_tfidf"] = None if ref is None or r["model"] == "tfidf_reference" else round(r["accuracy"] - ref, 4)
    order = {d: i for i, d in enumerate(dict.fromkeys(r["dataset"] for r in rows[len(ref_acc):]))}
    rows.sort(key=lambda r: (order.get(r["dataset"], len(order)), r["model"] == "tfidf_reference"))
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out_md) as tmp:
        tmp.write_text(df.to_markdown(index=False) + "\n")
    return df
