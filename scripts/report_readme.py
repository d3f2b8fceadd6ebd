"""Snakemake entry point: the README's "Results" section (Markdown) from the report tables and rankings."""
from pathlib import Path

from xaipipe.io import write_text
from xaipipe.pipeline import run
from xaipipe.report import results_section


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    tables_dir = Path(i.tables[0]).parent if i.tables else Path(o.md).parent / "tables"
    section = results_section(tables_dir, p.tables, dict(p.config), dict(p.rankings), distortion=dict(p.distortion))
    write_text(o.md, section)
    log.info("README results section: %d tables, %d rankings (copy it into README.md with `xaipipe readme`)",
             len(p.tables), len(p.rankings))


run(snakemake, main)
