"""Snakemake entry point: deletion/distortion curves and scores of one method variant (or the random
baseline when the rule has no relevance input)."""
from xaipipe.embed import read_vocab
from xaipipe.evaluate.stage import evaluate_method, write_evaluation
from xaipipe.explain.neutral import neutral_ids
from xaipipe.io import read_parquet
from xaipipe.models import load_checkpoint
from xaipipe.pipeline import run
from xaipipe.train import resolve_device


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    model, _meta = load_checkpoint(i.model, map_location=resolve_device(p.device))
    cfg = dict(p.evaluate)
    neutral = neutral_ids(read_vocab(i.vocab), cfg.get("neutral_words"))
    rel = read_parquet(i.relevance, rule="explain") if "relevance" in i.keys() else None
    docs = read_parquet(i.documents, rule="select_documents")
    curves, summary, per_doc = evaluate_method(model, docs, rel, cfg, neutral, p.seed)
    write_evaluation(curves, summary, per_doc, o.curves, o.summary, o.per_doc)


run(snakemake, main)
