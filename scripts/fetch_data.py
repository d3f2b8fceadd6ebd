"""Snakemake entry point: resolve the raw files of one dataset (see xaipipe.data.sources); for a custom
dataset the inputs are the user's tables (xaipipe.data.custom)."""
from xaipipe.data import fetch
from xaipipe.io import write_json
from xaipipe.pipeline import run


def main(log):
    p = snakemake.params
    tables = {role: snakemake.input[role] for role in snakemake.input.keys()}
    manifest = fetch(snakemake.wildcards.dataset, p.raw_dir, mirror=p.mirror, offline=p.offline,
                     optional=set(p.optional), verify=p.verify, tables=tables)
    for name, item in manifest["items"].items():
        log.info("%s: %s (%s)", name, item["path"], item["source"])
    write_json(snakemake.output.manifest, manifest)


run(snakemake, main)
