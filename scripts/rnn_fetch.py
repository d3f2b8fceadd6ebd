"""Snakemake entry point: resolve the raw IDX files of one RNN dataset (MNIST / Fashion-MNIST)."""
from xaipipe.io import write_json
from xaipipe.pipeline import run
from xaipipe.rnn.data import fetch


def main(log):
    p = snakemake.params
    manifest = fetch(snakemake.wildcards.rnn_dataset, p.raw_dir, mirror=p.mirror, offline=p.offline, verify=p.verify)
    for name, item in manifest["items"].items():
        log.info("%s: %s (%s)", name, item["path"], item["source"])
    write_json(snakemake.output.manifest, manifest)


run(snakemake, main)
