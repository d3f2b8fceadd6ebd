"""Snakemake entry point: one table of every model's test metrics."""
from xaipipe.pipeline import run
from xaipipe.summary import models_table


def main(log):
    models_table(snakemake.input.metrics, snakemake.output.table, snakemake.output.markdown,
                 reference_paths=list(snakemake.input.references))


run(snakemake, main)
