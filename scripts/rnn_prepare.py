"""Snakemake entry point: decode one RNN dataset's IDX files into train.npz / test.npz / stats.json."""
from xaipipe.io import read_json
from xaipipe.pipeline import run
from xaipipe.rnn.data import prepare


def main(log):
    o = snakemake.output
    prepare(snakemake.wildcards.rnn_dataset, read_json(snakemake.input.manifest), o.train, o.test, o.stats)


run(snakemake, main)
