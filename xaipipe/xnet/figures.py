"""Figures and Table 1 of the XNet paper (David & Liu, 002_8ecab4f1e6369166.txt, section 3 and 4).

* :func:`plot_variant_curves` — one variant's drop-losses over training in Figure 7's layout: left the
  mean over categories of the matched drop-losses, right one curve per neuron (its drop-loss on the
  category it is matched to). Lines: means over ``log_every`` training minibatches; markers: Algorithm 1
  on the test split before training and after every epoch. For the Eq. (1) variant this is Figure 7, for
  the matching variants the two panels of Figure 8.
* :func:`plot_droploss_panels` — Figure 1: the per-neuron curves of several variants side by side
  (baseline vs XNet).
* :func:`plot_activation_matrices` — Figure 2: category-by-neuron activation heatmaps, normalised over
  each neuron's column; the largest value of each column is framed.
* :func:`table1` — Table 1: test accuracy of every variant with the published CelebA values beside ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path

# Table 1 of the paper (CelebA, Young/Old, ResNet-18): variant name in our config -> (row, accuracy)
PUBLISHED_TABLE1 = {"baseline": ("Baseline", 0.8817), "xnet": ("XNet", 0.8558)}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    plt = _plt()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def matched_curves(curves: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows of ``source`` whose (category, neuron) pair was the one trained, one per (epoch, neuron)."""
    c = curves[(curves["source"] == source) & curves["matched"].astype(bool)]
    return c.sort_values(["neuron", "epoch"])


def _neuron_label(c: pd.DataFrame, neuron: int) -> str:
    cats = c.loc[c["neuron"] == neuron, "category"].unique()
    return f"neuron {neuron} ({cats[0]})" if len(cats) == 1 else f"neuron {neuron} (re-matched)"


def _per_neuron(ax, curves: pd.DataFrame, title: str) -> None:
    tr, te = matched_curves(curves, "train"), matched_curves(curves, "test")
    neurons = sorted(set(tr["neuron"]) | set(te["neuron"]))
    colors = _plt().rcParams["axes.prop_cycle"].by_key()["color"]
    for n, col in zip(neurons, colors * 10):
        label = _neuron_label(pd.concat([tr, te]), n)
        t = tr[tr["neuron"] == n]
        ax.plot(t["epoch"], t["droploss"], "-", color=col, lw=1.2, label=label)
        e = te[te["neuron"] == n]
        ax.plot(e["epoch"], e["droploss"], "o", color=col, ms=4, mfc="white")
    ax.set_xlabel("epoch")
    ax.set_ylabel("drop-loss L(θ̂_j, X_j)")
    ax.set_title(title)
    ax.legend(fontsize=7)


def plot_variant_curves(curves: pd.DataFrame, path: str | Path, title: str) -> None:
    """Figure 7 layout for one variant (see module docstring)."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for source, style in (("train", "-"), ("test", "o")):
        c = matched_curves(curves, source)
        if len(c):
            m = c.groupby("epoch")["droploss"].mean()
            a1.plot(m.index, m.values, style, label=f"{source}" + (" minibatches" if source == "train" else " split"),
                    mfc="white" if source == "test" else None)
    a1.set_xlabel("epoch")
    a1.set_ylabel("mean matched drop-loss")
    a1.set_title("mean over categories")
    a1.legend(fontsize=7)
    _per_neuron(a2, curves, "per neuron (lines: training, o: test split)")
    fig.suptitle(title)
    _save(fig, path)


def plot_droploss_panels(curves: dict[str, pd.DataFrame], path: str | Path, title: str) -> None:
    """Figure 1: per-neuron drop-loss curves, one panel per variant (each with its own y scale)."""
    plt = _plt()
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)  # own y scale per panel
    for ax, (name, c) in zip(axes[0], curves.items()):
        _per_neuron(ax, c, name)
    fig.suptitle(title)
    _save(fig, path)


def plot_activation_matrices(tables: dict[str, pd.DataFrame], path: str | Path, title: str,
                             stat: str = "share_mean") -> None:
    """Figure 2: heatmaps (categories x neurons) of ``stat`` (``share_mean`` or ``share_sum``), one per
    variant; each column sums to 1 and its maximum is framed (the paper's blue squares)."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    n = len(tables)
    fig, axes = plt.subplots(n, 1, figsize=(5.0, 1.0 + 1.6 * n), squeeze=False)
    for ax, (name, t) in zip(axes[:, 0], tables.items()):
        cats = list(dict.fromkeys(t["category"]))
        m = t.pivot(index="category", columns="neuron", values=stat).loc[cats].to_numpy()
        im = ax.imshow(m, cmap="Oranges", vmin=0, vmax=1, aspect="auto")
        for i in range(m.shape[1]):
            j = int(np.argmax(m[:, i]))
            ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, ec="tab:blue", lw=2.5))
            for jj in range(m.shape[0]):
                ax.text(i, jj, f"{m[jj, i]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(m.shape[1]), [f"neuron {i}" for i in range(m.shape[1])])
        ax.set_yticks(range(len(cats)), cats)
        ax.set_title(name, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def table1(metrics: dict[str, dict], out_csv: str | Path, out_md: str | Path,
           activations: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Table 1: test accuracy per variant beside the paper's (Baseline 0.8817, XNet 0.8558 on CelebA).

    ``difference`` = ours - published; ``change_vs_baseline`` compares each variant with our baseline
    (and ``published_change_vs_baseline`` the paper's XNet with its baseline: -0.0259), the comparison
    that carries over between datasets. ``specialisation`` is the mean, over categories, of the Figure 2
    share (``share_mean``) of the category's matched neuron (1/k for no specialisation). Training times
    are left out (each variant's ``timing.json`` has them), so that the table is the same bytes in two
    runs of one config."""
    base = metrics.get("baseline", {}).get("accuracy")
    pub_base = PUBLISHED_TABLE1["baseline"][1]
    rows = []
    for name, m in metrics.items():
        row_name, pub = PUBLISHED_TABLE1.get(name, (None, None))
        spec = None
        if activations is not None and name in activations:
            t = activations[name]
            spec = float(np.mean([t[(t["category"] == c) & (t["neuron"] == i)]["share_mean"].iloc[0]
                                  for c, i in zip(m["categories"], m["assignment"])]))
        rows.append({
            "variant": name, "paper_row": row_name, "alpha": m["alpha"], "reduction": m["reduction"],
            "matching": m["matching"], "kind": m["kind"], "accuracy": round(m["accuracy"], 4),
            "published_accuracy": pub, "difference": None if pub is None else round(m["accuracy"] - pub, 4),
            "change_vs_baseline": None if base is None else round(m["accuracy"] - base, 4),
            "published_change_vs_baseline": None if pub is None else round(pub - pub_base, 4),
            "test_min_droploss": round(m["test_min_droploss"], 4),
            "test_mean_droploss": round(m["test_mean_droploss"], 4),
            "specialisation": None if spec is None else round(spec, 3), "n_test": m["n_test"],
            "epochs": m.get("epochs_run"),
            "comparable_with_paper": m.get("comparable_with_paper", False), "dataset": m.get("dataset"),
            "note": m.get("note", ""),
        })
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    notes = sorted(set(df["note"]))
    show = df.drop(columns=["note", "dataset"])
    text = (f"Table 1 (XNet paper): test accuracy, {df['dataset'].iloc[0] if len(df) else ''}\n\n"
            + show.to_markdown(index=False) + "\n\n"
            + "".join(f"Note: {n}\n" for n in notes if n)
            + "Published values: Table 1 of David & Liu (CelebA, Young/Old, ResNet-18, 8 epochs).\n")
    with atomic_path(out_md) as tmp:
        tmp.write_text(text)
    return df


def write_report(variants: dict[str, dict], outputs: dict, dataset: str, stat: str = "share_mean") -> pd.DataFrame:
    """Stage entry: ``variants`` maps a variant name to its files ``{"metrics", "droploss",
    "activations"}``; writes ``outputs["table_csv"]``, ``["table_md"]``, ``["figure1"]`` (drop-loss
    curves of every variant) and ``["figure2"]`` (activation matrices of every variant)."""
    from ..io import read_json

    metrics = {n: read_json(f["metrics"]) for n, f in variants.items()}
    curves = {n: pd.read_csv(f["droploss"]) for n, f in variants.items()}
    acts = {n: pd.read_csv(f["activations"]) for n, f in variants.items()}
    df = table1(metrics, outputs["table_csv"], outputs["table_md"], acts)
    plot_droploss_panels(curves, outputs["figure1"], f"{dataset}: drop-loss per neuron during training (Figure 1)")
    what = "means" if stat == "share_mean" else "sums"
    plot_activation_matrices(acts, outputs["figure2"],
                             f"{dataset}: Figure 2, activation {what}\nper category, normalised per neuron", stat)
    return df
