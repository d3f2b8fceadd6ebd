"""Figures 4.7-4.9 of Chormai (2018), section 4.5.1, from the models' ``relevance.npz`` files.

* **Figure 4.7** (``fig4_7.png``): relevance heatmaps of the same test images for every trained model
  (rows: input, then ``Cell-SEQ``), e.g. Shallow-1/4/7 against Deep-1/4/7.
* **Figure 4.8** (``fig4_8.png``): ``rnn.figures.n_grid`` (16) random test images of class
  ``rnn.figures.class`` (1) and their heatmaps from every cell at sequence length ``rnn.figures.seq``
  (the thesis: Shallow-7 and Deep-7).
* **Figure 4.9** (``fig4_9.png`` + ``fig4_9.csv``): over the whole test population of that class, the
  share of the pixel intensity (``x / 255``) in each column block ``x_t`` (dashed) against the share of
  the relevance each model puts on that block. ``fig4_9.csv`` lists both distributions and, per model,
  the total variation distance ``0.5 sum_t |p_rel(t) - p_pix(t)|`` to the pixel distribution (0 = the
  same shape; the thesis's observation is that Deep-7 is close and Shallow-7 is not).

Heatmaps: each map divided by its largest absolute value, blue-white-red (negative-zero-positive);
thin lines mark the column blocks of a sequence model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..io import atomic_path
from .data import CLASSES
from .lrp import step_relevance
from .published import CELL_NAMES, DATASET_NAMES

log = logging.getLogger(__name__)

__all__ = ["figure_seq", "load_runs", "make_figures", "step_distributions"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label(cell: str, seq: int) -> str:
    """The thesis's CELL_NAME-SEQ convention (section 4.5), e.g. ``Deep-7``."""
    return f"{CELL_NAMES.get(cell, cell)}-{seq}"


def load_runs(paths: Mapping[tuple[str, int], str]) -> dict[tuple[str, int], dict]:
    """``{(cell, seq): arrays of relevance.npz}``."""
    runs = {}
    for key, path in paths.items():
        with np.load(path) as z:
            runs[key] = {k: z[k] for k in z.files}
    return runs


def figure_seq(requested: int | None, seqs) -> int:
    """Sequence length of Figures 4.8-4.9: ``requested``, or the longest trained one."""
    seqs = sorted(set(int(s) for s in seqs))
    if requested is not None:
        return int(requested)
    return seqs[-1]


def _heat(ax, rel: np.ndarray, seq: int) -> None:
    m = float(np.abs(rel).max()) or 1.0
    ax.imshow(rel / m, cmap="bwr", vmin=-1, vmax=1, interpolation="nearest")
    w = rel.shape[1] // max(seq, 1)
    for t in range(1, seq):
        ax.axvline(t * w - 0.5, color="0.6", lw=0.4)
    ax.set_xticks([]), ax.set_yticks([])


def _gray(ax, img: np.ndarray) -> None:
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _plt().close(fig)


def _order(runs: Mapping) -> list:
    cells = list(CELL_NAMES)
    return sorted(runs, key=lambda k: (cells.index(k[0]) if k[0] in cells else len(cells), k[1]))


def figure_4_7(runs: Mapping[tuple[str, int], dict], dataset: str, path: str | Path) -> None:
    plt = _plt()
    keys = _order(runs)
    first = runs[keys[0]]
    ex = first["examples"]
    n = max(len(ex), 1)
    fig, axes = plt.subplots(len(keys) + 1, n, figsize=(1.3 * n + 1.2, 1.3 * (len(keys) + 1)), squeeze=False)
    classes = CLASSES.get(dataset, [])
    for j, pos in enumerate(ex):
        _gray(axes[0, j], first["images"][pos])
        lab = int(first["labels"][pos])
        axes[0, j].set_title(classes[lab] if lab < len(classes) else str(lab), fontsize=7)
    axes[0, 0].set_ylabel("input", fontsize=8)
    for i, key in enumerate(keys, start=1):
        run = runs[key]
        for j, pos in enumerate(run["examples"]):
            _heat(axes[i, j], run["relevance"][pos], key[1])
            axes[i, j].set_xlabel(f"pred {int(run['pred'][pos])}", fontsize=6, labelpad=1)
        axes[i, 0].set_ylabel(label(*key), fontsize=8)
    fig.suptitle(f"Figure 4.7 — LRP heatmaps, {DATASET_NAMES.get(dataset, dataset)}", fontsize=9)
    _save(fig, path)


def figure_4_8(runs: Mapping[tuple[str, int], dict], dataset: str, seq: int, n_grid: int, seed: int,
               figure_class: int, path: str | Path) -> None:
    plt = _plt()
    keys = [k for k in _order(runs) if k[1] == seq]
    first = runs[keys[0]] if keys else None
    pop = first["population"] if first is not None else np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(pop, size=min(n_grid, len(pop)), replace=False)) if len(pop) else pop
    side = max(int(np.ceil(np.sqrt(max(len(pick), 1)))), 1)
    panels = [("input", None)] + [(label(*k), runs[k]) for k in keys]
    fig = plt.figure(figsize=(2.6 * len(panels), 2.8))
    sub = fig.subfigures(1, len(panels))
    sub = np.atleast_1d(sub)
    for (title, run), sf in zip(panels, sub):
        axes = sf.subplots(side, side, squeeze=False)
        for a in axes.ravel():
            a.axis("off")
        for p, a in zip(pick, axes.ravel()):
            if run is None:
                _gray(a, first["images"][p])
            else:
                _heat(a, run["relevance"][p], seq)
            a.axis("on")
        sf.suptitle(title, fontsize=9)
    name = CLASSES.get(dataset, [str(figure_class)] * (figure_class + 1))[figure_class]
    fig.suptitle(f"Figure 4.8 — {len(pick)} test images of class {name}, SEQ = {seq}", fontsize=9, y=1.06)
    _save(fig, path)


def step_distributions(run: dict, seq: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixel-intensity share, relevance share) per column block over the class population."""
    pop = run["population"]
    if len(pop) == 0:
        return np.full(seq, np.nan), np.full(seq, np.nan)
    images = run["images"][pop].astype(np.float64) / 255.0
    pix = step_relevance(images, seq).sum(0)
    rel = step_relevance(run["relevance"][pop].astype(np.float64), seq).sum(0)
    return pix / pix.sum(), rel / rel.sum()


def figure_4_9(runs: Mapping[tuple[str, int], dict], dataset: str, seq: int, figure_class: int,
               path_png: str | Path, path_csv: str | Path) -> pd.DataFrame:
    """Plot and tabulate (long format: ``model, step, pixel_share, relevance_share, tv_distance``)."""
    plt = _plt()
    keys = [k for k in _order(runs) if k[1] == seq]
    steps = np.arange(1, seq + 1)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    rows = []
    for i, key in enumerate(keys):
        pix, rel = step_distributions(runs[key], seq)
        if i == 0:
            ax.plot(steps, pix, "k--", lw=1.5, label="pixel intensity")
        tv = float(0.5 * np.abs(rel - pix).sum())
        ax.plot(steps, rel, "o-", ms=3, label=f"{label(*key)} (TV {tv:.2f})")
        rows += [{"model": label(*key), "cell": key[0], "seq": seq, "step": int(t), "pixel_share": p,
                  "relevance_share": r, "tv_distance": tv} for t, p, r in zip(steps, pix, rel)]
    name = CLASSES.get(dataset, [str(figure_class)] * (figure_class + 1))[figure_class]
    ax.set_xlabel("step t (column block)")
    ax.set_ylabel("share of the total")
    ax.set_title(f"Figure 4.9 — class {name} test population, {DATASET_NAMES.get(dataset, dataset)}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path_png)
    table = pd.DataFrame(rows, columns=["model", "cell", "seq", "step", "pixel_share", "relevance_share",
                                        "tv_distance"])
    with atomic_path(path_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table


def make_figures(relevance_paths: Mapping[tuple[str, int], str], dataset: str, figures_cfg: dict, seed: int,
                 outputs: Mapping[str, str]) -> dict:
    """Write Figures 4.7 (``outputs["fig4_7"]``), 4.8 (``fig4_8``) and 4.9 (``fig4_9``, ``fig4_9_csv``)."""
    runs = load_runs(relevance_paths)
    seq = figure_seq(figures_cfg.get("seq"), [k[1] for k in runs])
    cls = int(figures_cfg.get("class", 1))
    figure_4_7(runs, dataset, outputs["fig4_7"])
    figure_4_8(runs, dataset, seq, int(figures_cfg.get("n_grid", 16)), seed, cls, outputs["fig4_8"])
    table = figure_4_9(runs, dataset, seq, cls, outputs["fig4_9"], outputs["fig4_9_csv"])
    log.info("%s: figures at SEQ %d for %d models", dataset, seq, len(runs))
    return {"seq": seq, "fig4_9": table}
