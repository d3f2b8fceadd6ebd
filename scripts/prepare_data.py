"""Snakemake entry point: clean, tokenise, subset and write the splits of one dataset."""
from xaipipe.data.prepare import prepare, plot_length_histogram
from xaipipe.io import read_json
from xaipipe.pipeline import run


def main(log):
    out = snakemake.output
    stats = prepare(snakemake.wildcards.dataset, read_json(snakemake.input.manifest), dict(snakemake.params.data),
                    snakemake.params.seed, out.train, out.test, out.stats)
    if "histogram" in out.keys():
        plot_length_histogram(stats, out.histogram)


run(snakemake, main)
