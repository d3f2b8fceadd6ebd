"""Snakemake entry point: one student's SHAP / Grad-CAM / LIME superpixel explanations of the teacher's
predicted classes on the evaluation images."""
from xaipipe.distill.xdistill.stage import run_student_explain
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    run_student_explain(i.model, i.teacher_eval, i.train, i.test, {"evaluate": dict(p.evaluate)}, p.seed, p.device,
                        o.explanations, o.timing, desc=f"student {snakemake.wildcards.variant}")


run(snakemake, main)
