"""Snakemake entry point: XDistillation Tables II-V (CSV + Markdown, published values beside ours)."""
from xaipipe.distill.xdistill.stage import run_tables
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    files = {v: {"metrics": m, "explanations": e} for v, m, e in zip(p.variants, i.metrics, i.explanations)}
    outputs = {k: getattr(o, k) for k in o.keys()}
    run_tables(snakemake.wildcards.xdset, {"evaluate": dict(p.evaluate)}, i.teacher, i.cae, i.teacher_eval, files,
               outputs)


run(snakemake, main)
