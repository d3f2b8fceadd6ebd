"""Snakemake entry point: build the vocabulary and embedding matrix of one text dataset."""
import pandas as pd

from xaipipe.embed import build_embedding
from xaipipe.pipeline import run


def main(log):
    tr = pd.read_parquet(snakemake.input.train, columns=["tokens"])
    te = pd.read_parquet(snakemake.input.test, columns=["tokens"])
    o = snakemake.output
    info = build_embedding([list(t) for t in tr["tokens"]], [list(t) for t in te["tokens"]],
                           dict(snakemake.params.embedding), snakemake.params.seed, o.vocab, o.vectors, o.info,
                           workers=snakemake.threads)
    log.info("vocabulary %d words; OOV rate train %.3f test %.3f", info["n_vocab"], info["oov_rate"]["train"],
             info["oov_rate"]["test"])


run(snakemake, main)
