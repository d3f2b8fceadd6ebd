"""Snakemake entry point: train the XDistillation teacher of one dataset (LeNet-5 / VGG16)."""
from xaipipe.distill.xdistill.stage import run_teacher
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    run_teacher(i.train, i.test, {"data": dict(p.data), "teacher": dict(p.teacher)}, p.seed, p.device,
                {"model": o.model, "metrics": o.metrics, "history": o.history, "timing": o.timing},
                desc=f"{snakemake.wildcards.xdset} teacher")


run(snakemake, main)
