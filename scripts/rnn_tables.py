"""Snakemake entry point: Table 4.3 (parameter counts) or Table 4.5 (accuracy) beside the thesis."""
from xaipipe.pipeline import run
from xaipipe.rnn.tables import table_4_3, table_4_5


def main(log):
    o = snakemake.output
    if snakemake.rule == "rnn_table4_3":
        table_4_3(o.csv, o.md, seqs=snakemake.params.seqs)
    else:
        table_4_5(snakemake.input.metrics, o.csv, o.md)


run(snakemake, main)
