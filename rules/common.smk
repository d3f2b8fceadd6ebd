# Shared helpers: schema validation (before any job), wildcard constraints, target lists.
import json
import os

import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the library, for the config checks below


def _check_top_level():
    """Unknown top-level keys (typos such as 'sedd', 'resourcess') are named with the closest known key,
    before the schema would take them for custom dataset sections."""
    from xaipipe.config_checks import check_top_level_keys, schema_top_level_keys
    from xaipipe.errors import ConfigError

    try:
        check_top_level_keys(config, schema_top_level_keys(os.path.join(workflow.basedir, "config", "schema.yaml")))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


_check_top_level()
validate(config, schema="../config/schema.yaml", set_default=True)

# Stage sections (distillation, RNN cells, XNet, ...) have their own schema files under config/schema/;
# validated one by one so that their defaults are filled in too. One switch for every study: a study runs
# when its section is present and its `enabled` is not false; a disabled section is still validated, then
# dropped here, so no rule or helper below sees it.
STAGE_SECTIONS = ["distill_feedback", "distill_mnist", "xdistill", "distill_places", "rnn", "xnet"]
DISABLED_STUDIES = []
for _section in STAGE_SECTIONS:
    if config.get(_section) is not None:
        validate(config[_section], schema=f"../config/schema/{_section}.yaml", set_default=True)
        if config[_section].get("enabled") is False:
            config.pop(_section)
            DISABLED_STUDIES.append(_section)

for _d in config["datasets"]:
    if _d not in config:
        raise ValueError(
            f"config: dataset {_d!r} is listed under 'datasets' but has no '{_d}:' section "
            f"(add one, see config.yaml; for your own table a section with 'kind: custom', see "
            f"config/custom_example.yaml; or remove it from 'datasets')"
        )

# custom datasets (the user's own tables, xaipipe.data.custom) are text datasets
CUSTOM_DATASETS = [d for d in config["datasets"] if config[d].get("kind") == "custom"]
TEXT_DATASETS = [d for d in config["datasets"] if d in ("ng20", "agnews", "planted") or d in CUSTOM_DATASETS]
IMAGE_DATASETS = [d for d in config["datasets"] if d == "mnist"]

# rule-level wildcard constraints that route a dataset to its text or image rules
TEXT_PATTERN = "|".join(TEXT_DATASETS) or "(?!x)x"
IMAGE_PATTERN = "|".join(IMAGE_DATASETS) or "(?!x)x"

def _resolve_custom():
    """Check every custom dataset's files, columns and labels before any job, and replace its 'auto'
    settings (model max_len/channels, embedding dim/min_count/epochs) by values derived from the data.
    Runs in every process (jobs compute their params from the resolved values; a cache in
    .snakemake/xaipipe/ makes the re-reads cheap); only the main process prints what it derived."""
    import logging

    from xaipipe.data.custom import resolve_section

    log = logging.getLogger("xaipipe.data.custom")
    if workflow.is_main_process and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    for d in CUSTOM_DATASETS:
        config[d] = resolve_section(d, config[d], seed=config["seed"], cache_dir=".snakemake/xaipipe")


_resolve_custom()

# scripts import the library from this checkout (also inside conda envs and on cluster nodes); every process
# that reads the Snakefile sets it, so users need not (not an envvars: requirement; xaipipe/workflow_env.py)
from xaipipe.workflow_env import prepend_pythonpath

prepend_pythonpath(workflow.basedir)

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


def explain_cfg(wildcards):
    return config[wildcards.dataset]["explain"]


def method_cfg(wildcards):
    methods = config[wildcards.dataset]["explain"]["methods"]
    if wildcards.method not in methods:
        raise ValueError(f"no method variant {wildcards.method!r} under {wildcards.dataset}.explain.methods")
    return methods[wildcards.method]


def _check_methods():
    """Every explanation variant (method name and parameters: name, type, range) and every explained model
    is checked before any job, against the torch-free declarations in xaipipe/method_params.py (the
    explainers read their defaults from there too), so a bad value stops a dry run, not a job after
    training."""
    from xaipipe.errors import ConfigError
    from xaipipe.method_params import check_variant

    for d in config["datasets"]:
        ex = config[d].get("explain") or {}
        for variant, m in ex.get("methods", {}).items():
            try:
                check_variant(d, variant, m)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        for model in ex.get("models", []):
            if model not in config[d]["models"]:
                raise ValueError(f"config: {d}.explain.models names {model!r}, which is not in {d}.models")


def _check_writable():
    """results/, logs/ and benchmarks/ must be writable folders: say so before any job, not mid-run."""
    import tempfile

    from xaipipe.errors import storage_error

    for folder in (RESULTS, LOGS, BENCH):
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder) as fh:  # a full disk shows up now, not mid-run
                fh.write(b"\0" * (64 << 10))
        except OSError as exc:
            err = storage_error(exc, f"{folder}/")
            raise ValueError(str(err) if err is not None else f"cannot write {folder}/: {exc}") from None


def _check_folders():
    """A file where results/, logs/ or benchmarks/ should be breaks Snakemake's DAG; name it instead."""
    for folder in (RESULTS, LOGS, BENCH):
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise ValueError(
                f"{folder!r} in the working directory {os.getcwd()} is not a folder (a file or a broken link "
                f"is in the way); move it aside, or point {folder}/ at a folder on a disk with space, and rerun"
            )


if workflow.is_main_process:  # jobs re-read the Snakefile (twice on Slurm); the main process checked it
    _check_methods()
    _check_folders()


def _check_inputs():
    """Damaged inputs stop the run before the first job, naming the file and the rule that writes it.

    Snakemake deletes a job's old outputs when the job starts and leaves them deleted when it fails: a
    truncated train.parquet (newer than the embedding, so the embedding job reruns) used to cost the good
    embedding/ outputs and end in a pyarrow traceback. Here every existing input of the jobs about to run
    that no job of this run rewrites is checked cheaply (xaipipe.io.check_file: parquet/npz/checkpoint
    footers, npy sizes, json) before anything is deleted."""
    from xaipipe.io import check_file, unreadable

    dag = workflow.dag
    needrun = set(dag.needrun_jobs())
    checked = set()
    for job in needrun:
        for producer, files in dag.dependencies[job].items():
            if producer in needrun:
                continue
            for f in sorted(map(str, files)):
                if f in checked:
                    continue
                checked.add(f)
                problem = check_file(f)
                if problem is not None:
                    err = unreadable(f, problem, producer.rule.name)
                    raise ValueError(f"stopped before any job (nothing was run or deleted): {err}")


onstart:  # real runs only (not -n, --unlock, --lint): before the first job
    _check_writable()
    _check_inputs()


def method_palette():
    """Every explanation variant of the run (all datasets) -> its method: the figures' colour palette."""
    palette = {"random": "random"}
    for d in config["datasets"]:
        for v, m in (config[d].get("explain") or {}).get("methods", {}).items():
            palette.setdefault(v, m["method"])
    return palette


def reference_targets():
    """The TF-IDF references of the text datasets (``<dataset>.reference.enabled``)."""
    return [
        f"{RESULTS}/{d}/reference/metrics.json"
        for d in TEXT_DATASETS
        if (config[d].get("reference") or {}).get("enabled", True)
    ]


def gpu_resources():
    """Resources of GPU-tagged rules: Slurm asks for GPUs only when resources.gpu > 0."""
    r = config.get("resources", {})
    res = {}
    if r.get("gpu", 0) > 0:
        res["gpu"] = r["gpu"]
        if r.get("gpu_model"):
            res["gpu_model"] = r["gpu_model"]
    return res


def all_targets(report=True):
    """Every final output of the configured stages; with ``report`` also the report tables and the index
    (which depend on all the others)."""
    targets = []
    for d in config["datasets"]:
        targets.append(f"{RESULTS}/{d}/data/stats.json")
        for m in config[d]["models"]:
            targets.append(f"{RESULTS}/{d}/models/{m}/metrics.json")
        ex = config[d].get("explain")
        if ex:
            for m in ex["models"]:
                for v in ex["methods"]:
                    targets.append(f"{RESULTS}/{d}/explain/{m}/{v}/relevance.parquet")
                targets.append(f"{RESULTS}/{d}/evaluate/{m}/ranking.csv")
                targets.append(f"{RESULTS}/{d}/compare/{m}/index.html")  # one document under every method
    targets += reference_targets()
    targets.append(f"{RESULTS}/summary/models.csv")
    targets += distill_targets()
    targets += rnn_targets()
    targets += xnet_targets()
    if report:
        targets += [f"{RESULTS}/report/tables/{n}.md" for n in report_tables()]
        targets += [f"{RESULTS}/index.html", f"{RESULTS}/report/README_results.md"]
    return targets
