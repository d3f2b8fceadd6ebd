"""Snakemake entry point: one figure per curve/mode with every method, and the ranking table."""
from pathlib import Path

import pandas as pd

from xaipipe.evaluate.plots import correctness_table, plot_curves, ranking_table
from xaipipe.io import atomic_path, read_json
from xaipipe.pipeline import run


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    variants = dict(p.variants)
    curves = {Path(c).parent.name: pd.read_csv(c) for c in i.curves}
    summaries = {Path(s).parent.name: read_json(s, rule="evaluate") for s in i.summaries}
    table = ranking_table(summaries, variants)
    with atomic_path(o.ranking) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(o.ranking_md) as tmp:
        tmp.write_text(table.to_markdown(index=False))
    truth = correctness_table(summaries, variants)  # empty without planted ground truth
    with atomic_path(o.correctness) as tmp:
        truth.to_csv(tmp, index=False)
    with atomic_path(o.correctness_md) as tmp:
        tmp.write_text(truth.to_markdown(index=False) if len(truth) else "(no ground truth for this dataset)\n")
    Path(o.figures).mkdir(parents=True, exist_ok=True)
    pairs = sorted({(c, m) for df in curves.values() for c, m in zip(df["curve"], df["mode"])})
    for curve, mode in pairs:
        plot_curves(curves, variants, curve, mode, Path(o.figures) / f"{curve}_{mode}.png",
                    f"{wc.dataset} / {wc.model}", palette=dict(p.palette))
    log.info("%d figures, %d variants ranked", len(pairs), len(table))


run(snakemake, main)
