"""Snakemake entry point: XNet Table 1 and Figures 1-2 of one dataset, over every variant."""
from xaipipe.pipeline import run
from xaipipe.xnet import write_report


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    variants = {v: {"metrics": m, "droploss": d, "activations": a}
                for v, m, d, a in zip(p.variants, i.metrics, i.droploss, i.activations)}
    outputs = {"table_csv": o.table, "table_md": o.markdown, "figure1": o.figure1, "figure2": o.figure2}
    table = write_report(variants, outputs, wc.dataset, p.figure2_stat)
    log.info("xnet %s Table 1:\n%s", wc.dataset, table.drop(columns=["note"]).to_string(index=False))


run(snakemake, main)
