"""Snakemake entry point: the feedback results table (ours beside the vanilla models and the report's
numbers) and the combined training-curve figure of one dataset."""
from xaipipe.distill.feedback_report import table_stage
from xaipipe.pipeline import run


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    table = table_stage(wc.dataset, dict(zip(p.variants, i.metrics)), dict(zip(p.variants, i.histories)),
                        dict(zip(p.models, i.models)), o.table, o.markdown, o.curves)
    log.info("%d rows", len(table))


run(snakemake, main)
