"""Snakemake entry point: train one student variant with its registered method (baseline, KD, AT, NST, AB,
XDistillation)."""
from xaipipe.distill.xdistill.stage import run_student
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    dcfg = {"data": dict(p.data), "student": dict(p.student)}
    run_student(snakemake.wildcards.variant, dict(p.method), dcfg, i.teacher, i.get("cae"), i.train, i.test,
                p.seed, p.device, {"model": o.model, "metrics": o.metrics, "history": o.history, "timing": o.timing})


run(snakemake, main)
