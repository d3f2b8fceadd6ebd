"""Snakemake entry point: choose the documents every method explains (same set for all methods)."""
from xaipipe.embed import read_vocab
from xaipipe.explain.select import select_documents
from xaipipe.io import atomic_path, read_parquet
from xaipipe.models import load_checkpoint
from xaipipe.pipeline import run


def main(log):
    i, p = snakemake.input, snakemake.params
    model, _meta = load_checkpoint(i.model)
    test = read_parquet(i.test, rule="prepare_text")
    docs = select_documents(model, test, read_vocab(i.vocab), p.per_class, p.misclassified,
                            p.seed, p.max_doc_len, p.model_max_len)
    log.info("%d documents selected (%s)", len(docs), docs["set"].value_counts().to_dict())
    with atomic_path(snakemake.output.documents) as tmp:
        docs.to_parquet(tmp, index=False)


run(snakemake, main)
