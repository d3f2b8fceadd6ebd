"""Snakemake entry point: one table of the source reports as CSV, Markdown and LaTeX."""
from pathlib import Path

from xaipipe.pipeline import run
from xaipipe.report import export_table


def main(log):
    out = Path(snakemake.output.csv)
    info = export_table(snakemake.input.table, out.parent, out.stem, snakemake.params.caption)
    log.info("table %s: %d rows, published columns %s", info["name"], info["rows"], info["published_columns"])


run(snakemake, main)
