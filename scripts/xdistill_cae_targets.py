"""Snakemake entry point: the teacher's SHAP explanations of training images, summed per SLIC superpixel
(the targets of the convolutional autoencoder)."""
from xaipipe.distill.xdistill.stage import run_cae_targets
from xaipipe.pipeline import run


def main(log):
    i, p = snakemake.input, snakemake.params
    dcfg = {"data": dict(p.data), "shap": dict(p.shap), "superpixels": dict(p.superpixels)}
    run_cae_targets(i.teacher, i.train, dcfg, p.seed, p.device, snakemake.output.targets)


run(snakemake, main)
