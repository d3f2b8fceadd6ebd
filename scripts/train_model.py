"""Snakemake entry point: train one model (teacher or student) of one dataset."""
import numpy as np

from xaipipe.embed import read_vocab
from xaipipe.io import read_json
from xaipipe.pipeline import run
from xaipipe.train import train_image_model, train_text_model


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    outputs = {"model": o.model, "metrics": o.metrics, "history": o.history, "plot": o.plot, "timing": o.timing}
    stats = read_json(i.stats)
    desc = f"{wc.dataset}/{wc.model}"
    if "vocab" in i.keys():
        tokenizer = {k: p.data[k] for k in ("lowercase", "min_token_len", "max_token_len") if k in p.data}
        train_text_model(i.train, i.test, read_vocab(i.vocab), np.load(i.vectors), stats, dict(p.model), p.seed,
                         p.device, outputs, desc, tokenizer=tokenizer, vectors_file=i.vectors)
    else:
        train_image_model(i.train, i.test, stats, dict(p.model), p.seed, p.device, outputs, desc)


run(snakemake, main)
