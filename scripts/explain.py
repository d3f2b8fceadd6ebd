"""Snakemake entry point: relevance of every word of the selected documents for one method variant."""
from xaipipe.embed import read_vocab
from xaipipe.explain.stage import explain_documents, write_heatmaps, write_outputs
from xaipipe.io import read_parquet
from xaipipe.models import load_checkpoint
from xaipipe.pipeline import run
from xaipipe.train import resolve_device


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    model, _meta = load_checkpoint(i.model, map_location=resolve_device(p.device))
    docs = read_parquet(i.documents, rule="select_documents")
    rel, info = explain_documents(model, docs, read_vocab(i.vocab), dict(p.method), p.seed,
                                  target=p.target)
    info["variant"] = wc.method
    write_heatmaps(rel, o.heatmaps, p.heatmaps, f"{wc.dataset}/{wc.model}: {wc.method}")
    write_outputs(rel, info, o.relevance, o.params, o.timing)


run(snakemake, main)
