"""Snakemake entry point: results/<dataset>/compare/<model>/index.html, one document under every method."""
from pathlib import Path

from xaipipe.compare import write_compare
from xaipipe.pipeline import run


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    relevance = {Path(f).parent.name: f for f in i.relevance}
    per_doc = {Path(f).parent.name: f for f in i.per_doc}
    info = write_compare(o.page, o.docs, i.documents, relevance, per_doc, ranking=i.ranking, stats=i.stats,
                         methods=dict(p.methods), title=f"{wc.dataset} / {wc.model}: one document under every method",
                         links=dict(p.links))
    log.info("%d documents x %d methods (%d signed: %s); page %d B, documents %d B (largest %d B)", info["n_docs"],
             info["n_variants"], len(info["signed"]), ", ".join(info["signed"]) or "-", info["bytes_page"],
             info["bytes_docs"], info["max_doc_bytes"])


run(snakemake, main)
