"""Snakemake entry point: Figures 4.7-4.9 of one dataset from every model's relevance maps."""
from xaipipe.pipeline import run
from xaipipe.rnn.figures import make_figures


def main(log):
    p, o = snakemake.params, snakemake.output
    paths = {(cell, int(seq)): path for (cell, seq), path in zip(p.models, snakemake.input.relevance)}
    make_figures(paths, snakemake.wildcards.dataset, dict(p.figures), p.seed,
                 {"fig4_7": o.fig4_7, "fig4_8": o.fig4_8, "fig4_9": o.fig4_9, "fig4_9_csv": o.fig4_9_csv})


run(snakemake, main)
