"""Snakemake entry point: example explanations of teacher and students for one explainer (PNG)."""
from xaipipe.distill.xdistill.stage import run_figures
from xaipipe.pipeline import run


def main(log):
    i, p, wc = snakemake.input, snakemake.params, snakemake.wildcards
    run_figures(wc.xdset, {"evaluate": {"examples": p.examples}}, i.teacher_eval, i.test,
                dict(zip(p.variants, i.explanations)), {wc.explainer: snakemake.output.figure})


run(snakemake, main)
