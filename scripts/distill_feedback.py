"""Snakemake entry point: fine-tune one model with one feedback variant (distillation or self-feedback)."""
from xaipipe.distill.feedback import variant_stage
from xaipipe.distill.feedback_config import FeedbackVariant
from xaipipe.io import read_json
from xaipipe.pipeline import run


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    variant = FeedbackVariant(**dict(p.variant))
    outputs = {"model": o.model, "metrics": o.metrics, "history": o.history, "timing": o.timing, "curve": o.curve}
    relevance = i.relevance if "relevance" in i.keys() else None
    variant_stage(i.model, i.train, i.test, variant, dict(p.block), read_json(i.stats), p.seed, p.device, outputs,
                  relevance, desc=f"{wc.dataset}/{wc.variant}")


run(snakemake, main)
