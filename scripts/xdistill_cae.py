"""Snakemake entry point: train the convolutional autoencoder on (image, teacher SHAP superpixel map)."""
from xaipipe.distill.xdistill.stage import run_cae
from xaipipe.pipeline import run


def main(log):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    run_cae(i.targets, i.train, {"cae": dict(p.cae)}, p.seed, p.device,
            {"model": o.model, "metrics": o.metrics, "history": o.history, "examples": o.examples,
             "timing": o.timing})


run(snakemake, main)
