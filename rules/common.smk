# Shared helpers: schema validation (before any job), wildcard constraints, target lists.
import json
import os

from snakemake.utils import validate

validate(config, schema="../config/schema.yaml", set_default=True)

TEXT_DATASETS = [d for d in config["datasets"] if d in ("ng20", "agnews")]
IMAGE_DATASETS = [d for d in config["datasets"] if d == "mnist"]
for _d in config["datasets"]:
    if _d not in config:
        raise ValueError(
            f"config: dataset {_d!r} is listed under 'datasets' but has no '{_d}:' section "
            f"(add one, see config.yaml, or remove it from 'datasets')"
        )

# rule-level wildcard constraints that route a dataset to its text or image rules
TEXT_PATTERN = "|".join(TEXT_DATASETS) or "(?!x)x"
IMAGE_PATTERN = "|".join(IMAGE_DATASETS) or "(?!x)x"

# scripts import the library from this checkout (also inside conda envs and on cluster nodes)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [workflow.basedir] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)

RESULTS = "results"
LOGS = "logs"
BENCH = "benchmarks"


wildcard_constraints:
    dataset="[a-z][a-z0-9_]*",
    model="[a-z][a-z0-9_]*",


def dataset_cfg(wildcards):
    return config[wildcards.dataset]


def model_cfg(wildcards):
    models = config[wildcards.dataset]["models"]
    if wildcards.model not in models:
        raise ValueError(f"no model {wildcards.model!r} under {wildcards.dataset}.models in the config")
    return models[wildcards.model]


def gpu_resources():
    """Resources of GPU-tagged rules: Slurm asks for GPUs only when resources.gpu > 0."""
    r = config.get("resources", {})
    res = {}
    if r.get("gpu", 0) > 0:
        res["gpu"] = r["gpu"]
        if r.get("gpu_model"):
            res["gpu_model"] = r["gpu_model"]
    return res


def all_targets():
    targets = []
    for d in config["datasets"]:
        targets.append(f"{RESULTS}/{d}/data/stats.json")
        for m in config[d]["models"]:
            targets.append(f"{RESULTS}/{d}/models/{m}/metrics.json")
    targets.append(f"{RESULTS}/summary/models.csv")
    return targets
