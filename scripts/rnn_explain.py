"""Snakemake entry point: deep Taylor LRP through time of one trained cell on the figure images."""
from xaipipe.pipeline import run
from xaipipe.rnn.explain import explain_model


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    explain_model(i.model, i.test, dict(p.rnn), p.seed, o.relevance, o.summary)


run(snakemake, main)
