"""Snakemake entry point: the teacher's relevance of the training documents, computed once and shared by
every feedback-distillation variant with the same relevance settings."""
from xaipipe.distill.feedback import relevance_stage
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    relevance_stage(i.model, i.train, dict(p.spec), p.device, o.relevance, o.info, int(p.batch_docs))


run(snakemake, main)
