"""Snakemake entry point: fetch (raw folder -> mirror -> download, checksummed) and unpack CIFAR-10 for the
XDistillation stage (xaipipe.distill.xdistill.cifar)."""
from xaipipe.distill.xdistill.cifar import fetch_cifar10, prepare_cifar10
from xaipipe.pipeline import run


def main(log):
    p, o = snakemake.params, snakemake.output
    manifest = fetch_cifar10(p.raw_dir, mirror=p.mirror, offline=p.offline, verify=p.verify)
    for name, item in manifest["items"].items():
        log.info("%s: %s (%s)", name, item["path"], item["source"])
    prepare_cifar10(manifest, o.train, o.test, o.manifest)


run(snakemake, main)
