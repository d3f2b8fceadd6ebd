"""Snakemake entry point: the report's claims judged on every explained model, in one table (a report table)."""
from xaipipe.evaluate.claims import claims_summary
from xaipipe.io import atomic_path
from xaipipe.pipeline import run


def main(log):
    table = claims_summary(list(snakemake.params.sources))
    with atomic_path(snakemake.output.csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info("%d claims over %d models: %s", len(table), len(snakemake.params.sources),
             dict(table["verdict"].value_counts()))


run(snakemake, main)
