"""Snakemake entry point: results/index.html, a static page linking every artifact under results/."""
from xaipipe.pipeline import run
from xaipipe.report import build_index


def main(log):
    p = snakemake.params
    info = build_index(p.results, snakemake.output.index, dict(p.config), p.tables,
                       explained=list(p.explained))
    log.info("index: %d artifacts in %d groups, config hash %s", info["n_files"], info["groups"],
             info["config_hash"][:16])


run(snakemake, main)
