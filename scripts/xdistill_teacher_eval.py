"""Snakemake entry point: evaluation images, their SLIC segments and the teacher's SHAP / Grad-CAM / LIME
superpixel explanations (the reference of Tables IV and V)."""
from xaipipe.distill.xdistill.stage import run_teacher_eval
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    dcfg = {"data": dict(p.data), "shap": {"background": p.background}, "superpixels": dict(p.superpixels),
            "evaluate": dict(p.evaluate)}
    run_teacher_eval(i.teacher, i.train, i.test, dcfg, p.seed, p.device, o.explanations, o.timing)


run(snakemake, main)
