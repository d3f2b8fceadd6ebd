"""Snakemake entry point: train one XNet variant (or the baseline) on one dataset."""
from xaipipe.pipeline import run
from xaipipe.xnet import load_xnet_data, run_variant


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    data = load_xnet_data(wc.dataset, {k: str(v) for k, v in i.items()}, dict(p.data), p.seed)
    log.info("xnet %s: %d train / %d test examples, classes %s, categories %s (rates %s)", wc.dataset,
             len(data.train), len(data.test), data.classes if len(data.classes) <= 10 else len(data.classes),
             data.categories, data.category_rates()["train"])
    outputs = {"model": o.model, "metrics": o.metrics, "droploss": o.droploss, "activations": o.activations,
               "plot": o.plot, "timing": o.timing}
    run_variant(data, dict(p.model), dict(p.training), dict(p.variant), p.seed, p.device, outputs,
                f"xnet/{wc.dataset}/{wc.variant}", wc.variant)


run(snakemake, main)
