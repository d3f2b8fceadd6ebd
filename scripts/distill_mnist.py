"""Snakemake entry point of the MNIST explanation-guided distillation (report 7.3, Table 1): one
experiment of the grid (rule distill_mnist_experiment) or the table and figure (rule distill_mnist_table)."""
from xaipipe.distill.mnist_kd import build_table, run_experiment
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    if snakemake.rule == "distill_mnist_table":
        build_table(list(i.metrics), list(i.histories), o.table, o.markdown, o.figure)
        return
    run_experiment(i.train, i.test, i.teacher, dict(p.settings), snakemake.wildcards.experiment,
                   dict(p.experiment), p.seed, p.device,
                   {"model": o.model, "metrics": o.metrics, "history": o.history, "timing": o.timing})


run(snakemake, main)
