"""Figures and ranking tables across methods (report Figures 4-26 style): one plot per curve type and
replacement mode with every method's curve, methods grouped by colour family as in Figure 21, and a
ranking table by AOPC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path

# colour families (Figure 21 groups methods by colour); every method keeps its colour in every figure
FAMILIES = {"rde": "Reds", "greedy": "Greens", "lrp": "Blues", "grad": "Purples", "surrogate": "Oranges"}


def family(method: str) -> str:
    if method == "random":
        return "random"
    if method == "rde":
        return "rde"
    if method == "greedy":
        return "greedy"
    if method.startswith("lrp"):
        return "lrp"
    if method in ("lime", "shap"):
        return "surrogate"
    return "grad"


def method_colours(variants: dict[str, str], palette: dict[str, str] | None = None) -> dict[str, tuple]:
    """variant -> RGBA colour; ``variants`` maps variant name -> registered method.

    Shades are spread over the variants of ``palette`` (every variant of the run, all datasets; default
    ``variants``) in name order, so a variant has the same colour in every figure of a run, whichever
    subset of methods a figure shows."""
    import matplotlib

    every = {**(palette or {}), **variants}
    out: dict[str, tuple] = {}
    groups: dict[str, list[str]] = {}
    for v, m in sorted(every.items()):
        groups.setdefault(family(m), []).append(v)
    for fam, vs in groups.items():
        if fam == "random":
            for v in vs:
                out[v] = (0.4, 0.4, 0.4, 1.0)
            continue
        cmap = matplotlib.colormaps[FAMILIES[fam]]
        for i, v in enumerate(vs):
            out[v] = cmap(0.45 + 0.5 * (i + 1) / (len(vs) + 1))
    return {v: out[v] for v in variants}


TITLES = {
    "accuracy": "accuracy after deleting the top-k words",
    "probability": "probability of the original class after deleting the top-k words",
    "misclassified_changed": "misclassified documents: share whose prediction changed",
    "distortion": "distortion when keeping the top-k words (rest noise)",
}


def plot_curves(curves: dict[str, pd.DataFrame], variants: dict[str, str], curve: str, mode: str, path: str | Path,
                title: str, palette: dict[str, str] | None = None) -> dict[str, tuple]:
    """One figure with every variant's ``curve`` in ``mode``; returns the colour of each line drawn (empty,
    and no file, when no variant has that curve). ``palette``: see :func:`method_colours`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = method_colours(variants, palette)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    drawn: dict[str, tuple] = {}
    for v in sorted(curves):
        df = curves[v]
        d = df[(df["curve"] == curve) & (df["mode"] == mode)]
        if d.empty:
            continue
        style = "--" if v == "random" else "-"
        (line,) = ax.plot(d["k"], d["mean"], style, color=colours.get(v), label=v, lw=1.6)
        ax.fill_between(d["k"], d["lo"], d["hi"], color=colours.get(v), alpha=0.08)
        drawn[v] = tuple(matplotlib.colors.to_rgba(line.get_color()))
    if not drawn:
        plt.close(fig)
        return {}
    ax.set_xlabel("k (words deleted)" if curve != "distortion" else "k (most relevant words kept)")
    ax.set_ylabel(f"{curve} ({mode})")
    ax.set_title(f"{title}\n{TITLES.get(curve, curve)}, mode {mode}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best", frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return drawn


CORRECTNESS_COLUMNS = ("auc", "hit@1", "precision@5", "recall@5", "spearman")


def correctness_table(summaries: dict[str, dict], variants: dict[str, str]) -> pd.DataFrame:
    """Explanations against planted ground truth, one row per variant (the random order included), best
    ROC-AUC first: every metric of :func:`~xaipipe.evaluate.stage.correctness` that is present, as mean and
    95 % bootstrap interval over the correctly classified documents. Empty (no rows) for data without
    ground truth."""
    rows = []
    for v, s in summaries.items():
        c = s.get("correctness")
        if not c:
            continue
        row: dict = {"variant": v, "method": variants.get(v, v), "n_docs": c.get("auc", {}).get("n_docs")}
        for name in CORRECTNESS_COLUMNS + tuple(k for k in c if k not in CORRECTNESS_COLUMNS):
            val = c.get(name)
            if not isinstance(val, dict):
                continue
            row[name] = None if val["mean"] is None else round(val["mean"], 4)
            row[f"{name}_ci"] = None if val["mean"] is None else f"[{val['lo']:.3f}, {val['hi']:.3f}]"
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["rank", "variant", "method", "n_docs", "auc", "auc_ci"])
    df = pd.DataFrame(rows).sort_values("auc", ascending=False, kind="stable", na_position="last")
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df.reset_index(drop=True)


def ranking_table(summaries: dict[str, dict], variants: dict[str, str],
                  comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per variant: AOPC (with CI) of the accuracy and probability curves per mode, accuracy at k,
    the mean rise of the share of changed predictions on misclassified documents
    (``gain_misclassified_changed_*``), planted-corpus correctness; sorted by AOPC in zero mode (higher =
    better: the accuracy drops faster when the method's top words are deleted). ``comparisons``: the paired
    comparisons with the reference variants in long format
    (:func:`~xaipipe.evaluate.compare.compare_to_references`), added as ``<score>_vs_<reference>`` columns
    (difference, ``_ci``, ``_p_adj``, ``_sig``: ``*`` when significant after the Holm correction)."""
    rows = []
    for v, s in summaries.items():
        row: dict = {"variant": v, "method": variants.get(v, v)}
        for key, c in s["curves"].items():
            curve, mode = key.split("/")
            if curve in ("accuracy", "probability"):
                row[f"aopc_{curve}_{mode}"] = round(c["aopc"], 4)
                row[f"aopc_{curve}_{mode}_ci"] = f"[{c['aopc_lo']:.3f}, {c['aopc_hi']:.3f}]"
            elif curve == "misclassified_changed":
                # the share of changed predictions rises with k: report the area *under* the rise
                # (= -AOPC), so that higher is better here too
                row[f"gain_{curve}_{mode}"] = round(-c["aopc"], 4)
                row[f"gain_{curve}_{mode}_ci"] = f"[{-c['aopc_hi']:.3f}, {-c['aopc_lo']:.3f}]"
            if curve == "accuracy" and mode == "zero":
                for k, val in c["at_k"].items():
                    row[f"acc@{k}_zero"] = round(val["mean"], 4)
        for k, val in (s.get("correctness") or {}).items():
            if k in ("auc", "hit@1", "precision@5"):  # planted_precision@5: shown in the README
                mean = val.get("mean") if isinstance(val, dict) else val
                row[f"planted_{k}"] = None if mean is None else round(mean, 4)
        rows.append(row)
    df = pd.DataFrame(rows)
    df = _with_comparisons(df, comparisons, exclude=("distortion",))
    if "aopc_accuracy_zero" in df.columns:
        df = df.sort_values("aopc_accuracy_zero", ascending=False, kind="stable")
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df.reset_index(drop=True)


def _with_comparisons(df: pd.DataFrame, comparisons: pd.DataFrame | None, exclude=(), only=None) -> pd.DataFrame:
    from .compare import wide_columns

    if comparisons is None or not len(comparisons) or not len(df):
        return df
    curve = comparisons["key"].str.split("/").str[0]
    keep = ~curve.isin(exclude) if only is None else curve.isin(only)
    wide = wide_columns(comparisons[keep])
    return df.merge(wide, on="variant", how="left") if len(wide) else df


def distortion_table(summaries: dict[str, dict], variants: dict[str, str], comparisons: pd.DataFrame | None = None,
                     ranking: pd.DataFrame | None = None) -> pd.DataFrame:
    """The distortion curves' summary beside the deletion curves' (report Figures 5a, 11, 15, 20): one row
    per variant with the AOPC (and CI) of the distortion curve in each form (``aopc_distortion_l1/l2/l4``;
    the distortion falls as more top words are kept, higher = it falls faster = better), the paired
    comparisons with the references on these curves (as in :func:`ranking_table`) and, beside them, the
    variant's AOPC and rank on the zero-vector accuracy curve (``aopc_accuracy_zero``,
    ``rank_accuracy_zero``, from ``ranking``); sorted by ``aopc_distortion_l2`` (the RDE paper's
    distortion). Empty without distortion curves."""
    rows = []
    for v, s in summaries.items():
        row: dict = {"variant": v, "method": variants.get(v, v)}
        for key, c in s["curves"].items():
            curve, form = key.split("/")
            if curve == "distortion":
                row[f"aopc_distortion_{form}"] = round(c["aopc"], 4)
                row[f"aopc_distortion_{form}_ci"] = f"[{c['aopc_lo']:.3f}, {c['aopc_hi']:.3f}]"
        if len(row) > 2:
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["rank", "variant", "method"])
    df = pd.DataFrame(rows)
    if ranking is not None and "aopc_accuracy_zero" in ranking.columns:
        acc = ranking[["variant", "rank", "aopc_accuracy_zero"]].rename(columns={"rank": "rank_accuracy_zero"})
        df = df.merge(acc, on="variant", how="left")
    df = _with_comparisons(df, comparisons, only=("distortion",))
    sort = next((c for c in ("aopc_distortion_l2", "aopc_distortion_l1", "aopc_distortion_l4") if c in df.columns))
    df = df.sort_values(sort, ascending=False, kind="stable")
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df.reset_index(drop=True)


def ranking_markdown(df: pd.DataFrame, alpha: float = 0.05) -> str:
    """Markdown of a ranking table with each comparison's four columns (``X_vs_R``, ``_ci``, ``_p_adj``,
    ``_sig``) in one cell ``X vs R``: ``difference [interval] p_adj`` and ``*`` when significant."""
    if not len(df):
        return "(no rows)\n"
    out = pd.DataFrame(index=df.index)
    comp = {c for c in df.columns if "_vs_" in c and not c.endswith(("_ci", "_p_adj", "_sig"))}
    for c in df.columns:
        if c in comp:
            def cell(i, c=c):
                d = df.at[i, c]
                if pd.isna(d):
                    return ""
                return f"{d:+.3f} {df.at[i, c + '_ci']} {df.at[i, c + '_p_adj']:.2g}{df.at[i, c + '_sig'] or ''}"
            out[c.replace("_vs_", " vs ")] = [cell(i) for i in df.index]
        elif not any(c == f"{b}{s}" for b in comp for s in ("_ci", "_p_adj", "_sig")):
            out[c] = df[c]
    note = ("\n\nComparison cells: AOPC difference variant − reference over the same documents (positive: the "
            "variant is better), 95 % paired bootstrap interval, Holm-adjusted sign-flip p-value; `*` = significant "
            f"at {alpha:g} after the correction over every comparison of the table.\n")
    return out.to_markdown(index=False) + (note if comp else "\n")
