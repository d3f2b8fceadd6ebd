"""Snakemake entry point: train one recurrent cell on one sequence length of one dataset."""
from xaipipe.pipeline import run
from xaipipe.rnn.train import train_cell


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    train_cell(i.train, i.test, wc.dataset, wc.cell, int(wc.seq), dict(p.rnn), p.seed, p.device,
               {"model": o.model, "metrics": o.metrics, "history": o.history, "timing": o.timing})


run(snakemake, main)
