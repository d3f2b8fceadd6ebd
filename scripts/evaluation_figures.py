"""Snakemake entry point: one figure per curve/mode with every method, the ranking tables with paired
comparisons against the reference variants, and the report's claims judged on this run."""
from pathlib import Path

import pandas as pd

from xaipipe.evaluate.claims import claims_table
from xaipipe.evaluate.compare import ranking_comparisons
from xaipipe.evaluate.plots import (correctness_table, distortion_table, plot_curves, ranking_markdown,
                                    ranking_table)
from xaipipe.io import atomic_path, read_json
from xaipipe.pipeline import run


def write_table(df, csv, md, markdown):
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(md) as tmp:
        tmp.write_text(markdown)


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    variants = dict(p.variants)
    curves = {Path(c).parent.name: pd.read_csv(c) for c in i.curves}
    summaries = {Path(s).parent.name: read_json(s, rule="evaluate") for s in i.summaries}
    per_doc = {Path(s).parent.name: pd.read_parquet(s) for s in i.per_doc}
    stats = dict(n_boot=int(p.bootstrap), n_perm=p.permutations, seed=int(p.seed), alpha=float(p.alpha))
    deletion, distortion = ranking_comparisons(per_doc, p.references, **stats)
    with atomic_path(o.comparisons) as tmp:
        pd.concat([deletion, distortion], ignore_index=True).to_csv(tmp, index=False, float_format="%.6g")
    table = ranking_table(summaries, variants, deletion)
    write_table(table, o.ranking, o.ranking_md, ranking_markdown(table, float(p.alpha)))
    dist = distortion_table(summaries, variants, distortion, table)
    write_table(dist, o.distortion_ranking, o.distortion_ranking_md,
                ranking_markdown(dist, float(p.alpha)) if len(dist) else "(no distortion curves: evaluate.distortion is off)\n")
    claims = claims_table(per_doc, variants, figures_dir=o.figures, **stats)
    write_table(claims, o.claims, o.claims_md, claims.to_markdown(index=False) + "\n")
    truth = correctness_table(summaries, variants)  # empty without planted ground truth
    write_table(truth, o.correctness, o.correctness_md,
                truth.to_markdown(index=False) if len(truth) else "(no ground truth for this dataset)\n")
    Path(o.figures).mkdir(parents=True, exist_ok=True)
    pairs = sorted({(c, m) for df in curves.values() for c, m in zip(df["curve"], df["mode"])})
    for curve, mode in pairs:
        plot_curves(curves, variants, curve, mode, Path(o.figures) / f"{curve}_{mode}.png",
                    f"{wc.dataset} / {wc.model}", palette=dict(p.palette))
    log.info("%d figures, %d variants ranked, %d + %d paired comparisons against %s; claims: %s", len(pairs),
             len(table), len(deletion), len(distortion), list(p.references),
             dict(claims["verdict"].value_counts()))


run(snakemake, main)
