# Helpers of rules/evaluate.smk (functions only; rules/report.smk uses them too): the variants evaluated per
# (dataset, model), the curve parameters, and the claims tables of every explained model.


def eval_variants(wc):
    return list(config[wc.dataset]["explain"]["methods"]) + ["random"]


#: evaluate keys of the comparisons (evaluation_figures): not parameters of the curves, so changing them
#: reruns only the tables, not the evaluate jobs
COMPARISON_KEYS = ("compare_to", "alpha", "permutations")


def curve_params(wc):
    return {k: v for k, v in config[wc.dataset]["evaluate"].items() if k not in COMPARISON_KEYS}


def claims_files():
    """(dataset, model) -> claims.csv of every explained model."""
    out = {}
    for d in config["datasets"]:
        ex = config[d].get("explain")
        for m in (ex or {}).get("models", []):
            out[(d, m)] = f"{RESULTS}/{d}/evaluate/{m}/claims.csv"
    return out
