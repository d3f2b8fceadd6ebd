"""Snakemake entry point: build the vocabulary and embedding matrix of one text dataset."""
from xaipipe.embed import build_embedding
from xaipipe.io import read_parquet
from xaipipe.pipeline import run


def main(log):
    tr = read_parquet(snakemake.input.train, rule="prepare_text", columns=["tokens"])
    te = read_parquet(snakemake.input.test, rule="prepare_text", columns=["tokens"])
    o = snakemake.output
    info = build_embedding([list(t) for t in tr["tokens"]], [list(t) for t in te["tokens"]],
                           dict(snakemake.params.embedding), snakemake.params.seed, o.vocab, o.vectors, o.info,
                           workers=snakemake.threads)
    log.info("vocabulary %d words; OOV rate train %.3f test %.3f", info["n_vocab"], info["oov_rate"]["train"],
             info["oov_rate"]["test"])


run(snakemake, main)
