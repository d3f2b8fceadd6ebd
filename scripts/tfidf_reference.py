"""Snakemake entry point: the TF-IDF + linear SVM reference of one text dataset."""
from xaipipe.io import read_json, read_parquet
from xaipipe.pipeline import run
from xaipipe.reference import train_reference


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    cfg = {k: v for k, v in dict(p.reference).items() if k != "enabled"}
    train_reference(read_parquet(i.train, rule="prepare_text", columns=["tokens", "label"]),
                    read_parquet(i.test, rule="prepare_text", columns=["tokens", "label"]),
                    read_json(i.stats, rule="prepare_text")["classes"], cfg, p.seed, o.metrics, o.features)


run(snakemake, main)
