"""Training curves (report Figures 27-31) and the results table of the feedback fine-tuning variants.

Per variant, :func:`plot_variant_curve` draws the loss and the accuracies per epoch (forced epochs shaded);
per dataset, :func:`plot_dataset_curves` puts the test accuracy of every variant into one figure (student
distillation and teacher self-feedback in separate panels, the vanilla models as dashed lines) and
:func:`feedback_table` lists the final test accuracies beside the vanilla student and teacher and the
report's published numbers (:data:`~.feedback_config.PUBLISHED`, :data:`xaipipe.summary.PUBLISHED_ACCURACY`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..io import atomic_path, read_json
from ..summary import PUBLISHED_ACCURACY

__all__ = ["feedback_table", "plot_dataset_curves", "plot_variant_curve", "table_stage"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _shade_forced(ax, hist: pd.DataFrame) -> None:
    for e in hist.loc[hist["forced"].astype(bool), "epoch"]:
        ax.axvspan(e - 0.5, e + 0.5, color="0.85", zorder=0, lw=0)


def plot_variant_curve(hist: pd.DataFrame, path: str | Path, title: str) -> None:
    """Loss and accuracy per epoch of one variant; grey bands = forced (feedback) epochs, epoch 0 = the
    starting model. ``train`` = the batches as trained (masked copies included), ``masked copies`` = the
    accuracy on the masked rows alone, ``clean train`` = the unmodified training documents."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    run = hist[hist["epoch"] > 0]
    for ax in (a1, a2):
        _shade_forced(ax, hist)
    if len(run):
        a1.plot(run["epoch"], run["train_loss"], "o-", label="train (as trained)")
    if "test_loss" in hist:
        a1.plot(hist["epoch"], hist["test_loss"], "s-", label="test")
    a1.set_xlabel("epoch"); a1.set_ylabel("cross-entropy"); a1.legend(fontsize=8)
    a2.plot(hist["epoch"], hist["test_acc"], "s-", label="test")
    if "clean_train_acc" in hist:
        a2.plot(hist["epoch"], hist["clean_train_acc"], "^-", label="clean train")
    if len(run):
        a2.plot(run["epoch"], run["train_acc"], "o--", label="train (as trained)")
        if "masked_acc" in run and run["masked_acc"].notna().any():
            a2.plot(run["epoch"], run["masked_acc"], "x:", label="masked copies")
    a2.set_xlabel("epoch"); a2.set_ylabel("accuracy"); a2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_dataset_curves(histories: dict[str, pd.DataFrame], variants: dict[str, dict], vanilla: dict[str, float],
                        path: str | Path, title: str) -> None:
    """Test accuracy per epoch of every variant: one panel for feedback distillation (``source:
    teacher``), one for self-feedback; dashed lines = the vanilla models' test accuracy."""
    plt = _plt()
    groups = [("teacher", "feedback distillation (student)"), ("self", "self-feedback fine-tuning")]
    groups = [(s, t) for s, t in groups if any(v["source"] == s for v in variants.values())] or groups[:1]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.2 * len(groups), 4.2), squeeze=False)
    for ax, (source, sub) in zip(axes[0], groups):
        names = [n for n, v in variants.items() if v["source"] == source]
        for n in names:
            h = histories[n]
            ax.plot(h["epoch"], h["test_acc"], "o-", ms=3, label=n)
        for model in sorted({variants[n]["model"] for n in names}):
            if model in vanilla:
                ax.axhline(vanilla[model], ls="--", color="0.4", lw=1)
                ax.annotate(f"vanilla {model}", (0, vanilla[model]), fontsize=7, color="0.3",
                            xytext=(2, 2), textcoords="offset points")
        ax.set_title(sub, fontsize=10)
        ax.set_xlabel("epoch (0 = start)"); ax.set_ylabel("test accuracy")
        if names:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _r(x, nd=4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def feedback_table(dataset: str, variant_metrics: dict[str, dict], model_metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per vanilla model and per variant: final test accuracy, change from the start, peak over
    epochs (chosen on the test split, so optimistic), and the published numbers with the difference. No wall
    times (each variant's ``timing.json`` has them): the table is byte-identical between runs."""
    rows = []
    for model, m in model_metrics.items():
        pub = PUBLISHED_ACCURACY.get((dataset, model))
        rows.append({"dataset": dataset, "variant": f"vanilla {model}", "model": model,
                     "accuracy": _r(m["accuracy"]), "published_accuracy": pub,
                     "difference": None if pub is None else _r(m["accuracy"] - pub),
                     "n_test": m.get("n_test"), "comparable_with_paper": m.get("comparable_with_paper", True)})
    for name, m in variant_metrics.items():
        v = m["variant"]
        pub = m.get("published") or {}
        rel = v["relevance"]
        rel_txt = rel["method"] + "".join(f" {k}={val}" for k, val in rel.items() if k != "method")
        rows.append({
            "dataset": dataset, "variant": name, "model": v["model"], "source": v["source"], "mode": v["mode"],
            "copies": v["copies"], "masked": v["masked"], "k": v["k"], "relevance": rel_txt,
            "schedule": v["schedule"], "lr": v["lr"], "epochs": v["epochs"],
            "start_accuracy": _r(m["start_accuracy"]), "accuracy": _r(m["accuracy"]), "change": _r(m["change"]),
            "peak_accuracy": _r(m.get("peak_accuracy")), "peak_epoch": m.get("peak_epoch"),
            "published_accuracy": pub.get("accuracy"), "published_start": pub.get("start"),
            "published_change": _r(pub["accuracy"] - pub["start"]) if pub else None,
            "difference": _r(m["accuracy"] - pub["accuracy"]) if pub else None,
            "where": pub.get("where"), "n_test": m.get("n_test"), "n_train": m.get("n_train"),
            "comparable_with_paper": m.get("comparable_with_paper", True), "published_note": pub.get("note"),
        })
    columns = ["dataset", "variant", "model", "source", "mode", "copies", "masked", "k", "relevance", "schedule",
               "lr", "epochs", "start_accuracy", "accuracy", "change", "peak_accuracy", "peak_epoch",
               "published_start", "published_accuracy", "published_change", "difference", "where", "n_train",
               "n_test", "comparable_with_paper", "published_note"]
    return pd.DataFrame(rows).reindex(columns=columns)


def table_stage(dataset: str, variant_metrics: dict[str, str], histories: dict[str, str],
                model_metrics: dict[str, str], out_csv: str, out_md: str, out_curves: str,
                setting_note: str | None = None) -> pd.DataFrame:
    """Read every variant's ``metrics.json`` / ``history.csv`` and the vanilla models' ``metrics.json``; write ``table.csv``, ``table.md`` (with a note on
    our setting) and the combined curve figure."""
    vm = {n: read_json(p) for n, p in variant_metrics.items()}
    mm = {n: read_json(p) for n, p in model_metrics.items()}
    df = feedback_table(dataset, vm, mm)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    notes = [f"Feedback fine-tuning on {dataset}: final test accuracy after the last epoch; `change` = "
             "final - start (epoch 0, the vanilla model on the same test documents); `peak_*` is picked on "
             "the test split (optimistic); `difference` = ours - published."]
    if setting_note:
        notes.append(setting_note)
    notes += sorted({m["note"] for m in vm.values() if m.get("note")} |
                    {m["note"] for m in mm.values() if m.get("note")})
    notes += [f"{r.variant}: {r.published_note}" for r in df.itertuples() if isinstance(r.published_note, str)]
    shown = df.drop(columns=["published_note", "dataset"])
    with atomic_path(out_md) as tmp:
        tmp.write_text("\n\n".join(notes) + "\n\n" + shown.to_markdown(index=False, missingval="") + "\n")
    hist = {n: pd.read_csv(p) for n, p in histories.items()}
    plot_dataset_curves(hist, {n: m["variant"] for n, m in vm.items()},
                        {n: m["accuracy"] for n, m in mm.items()}, out_curves,
                        f"{dataset}: test accuracy during feedback fine-tuning")
    return df
