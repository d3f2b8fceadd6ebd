"""Snakemake entry point: locate (or download) the official CelebA files for XNet; write the manifest."""
from xaipipe.io import write_json
from xaipipe.pipeline import run
from xaipipe.xnet import fetch_celeba


def main(log):
    p = snakemake.params
    manifest = fetch_celeba(p.raw_dir, mirror=p.mirror, offline=p.offline, verify=p.verify)
    for name, item in manifest["items"].items():
        log.info("%s: %s (%s)", name, item["path"], item["source"])
    write_json(snakemake.output.manifest, manifest)


run(snakemake, main)
