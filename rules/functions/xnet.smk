# Helpers of rules/xnet.smk (functions only): the xnet section, its datasets and variants, the training inputs
# and params per dataset, and the stage's final targets.

XNET = config.get("xnet") or {}  # defaults filled by rules/common.smk (config/schema/xnet.yaml)
# mnist and ng20 use the data stage's prepared files: like the other stages, XNet follows 'datasets'
XNET_DATASETS = [d for d in XNET.get("datasets", []) if d not in ("mnist", "ng20") or d in config["datasets"]]
XNET_VARIANTS = list(XNET.get("variants", {}))
XNET_PATTERN = "|".join(XNET_DATASETS) or "(?!x)x"


def xnet_inputs(wildcards):
    d = wildcards.dataset
    if d == "mnist":
        return {s: f"{RESULTS}/mnist/data/{s}.npz" for s in ("train", "test")} | {
            "stats": f"{RESULTS}/mnist/data/stats.json"}
    if d == "ng20":
        return {s: f"{RESULTS}/ng20/data/{s}.parquet" for s in ("train", "test")} | {
            "stats": f"{RESULTS}/ng20/data/stats.json"}
    return {"manifest": f"{RESULTS}/xnet/celeba/data/manifest.json"}


def xnet_variant_cfg(wildcards):
    if wildcards.variant not in XNET.get("variants", {}):
        raise ValueError(f"no variant {wildcards.variant!r} under xnet.variants in the config")
    return XNET["variants"][wildcards.variant]


def xnet_section(key):
    return lambda wc: XNET.get(wc.dataset, {}).get(key, {})


def xnet_targets():
    """Final XNet outputs (empty without an `xnet` section): Table 1, Figures 1-2 and every variant's files."""
    if not XNET:
        return []
    out = []
    for d in XNET_DATASETS:
        out += [f"{RESULTS}/xnet/{d}/table1.csv", f"{RESULTS}/xnet/{d}/table1.md",
                f"{RESULTS}/xnet/{d}/figures/figure1_droploss.png",
                f"{RESULTS}/xnet/{d}/figures/figure2_activations.png"]
        out += [f"{RESULTS}/xnet/{d}/{v}/{f}" for v in XNET_VARIANTS
                for f in ("model.pt", "metrics.json", "droploss.csv", "activations.csv", "droploss.png",
                          "timing.json")]
    return out
