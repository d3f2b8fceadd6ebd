# Issue 6 (text part) — feedback distillation (report 7.1, 7.2.1, 7.2.2) and self-feedback fine-tuning
# (report 8): config section `distill_feedback: {datasets: {<dataset>: {variants: {<name>: {...}}}}}`.
# Per variant: fine-tune a trained model (the student, or the teacher itself for self-feedback) with
# forced batches whose copies keep / lose the top-k relevant words. The teacher's relevance of the training
# set is computed once per (teacher, method, parameters, target, max_len, subset) and shared by variants.
from xaipipe.distill.feedback_config import (
    check_section as _fb_check_section,
    dataset_block as _fb_dataset_block,
    relevance_key as _fb_relevance_key,
    relevance_spec as _fb_relevance_spec,
    selected_variants as _fb_selected_variants,
)

_fb_check_section(config)  # unknown models, methods, run lists or paper ids stop the run before any job

FEEDBACK = f"{RESULTS}/{{dataset}}/distill/feedback"


def feedback_datasets():
    """Text datasets of this run that have feedback variants to run."""
    section = config.get("distill_feedback") or {}
    return [
        d
        for d in TEXT_DATASETS
        if d in (section.get("datasets") or {}) and _fb_selected_variants(section, d, config[d]["models"])
    ]


def feedback_variants(dataset):
    return _fb_selected_variants(config.get("distill_feedback"), dataset, config[dataset]["models"])


def feedback_block(dataset):
    return _fb_dataset_block(config.get("distill_feedback"), dataset)


def feedback_variant(wc):
    variants = feedback_variants(wc.dataset)
    if wc.variant not in variants:
        raise ValueError(
            f"no feedback variant {wc.variant!r} under distill_feedback.datasets.{wc.dataset}.variants "
            f"(or it is not listed in run)"
        )
    return variants[wc.variant]


def feedback_relevance_file(dataset, variant):
    spec = _fb_relevance_spec(variant, feedback_block(dataset), config["seed"])
    return f"{RESULTS}/{dataset}/distill/feedback/relevance/{variant.teacher}/{_fb_relevance_key(spec)}.parquet"


def feedback_relevance_spec(wc):
    """The spec behind relevance/{teacher}/{key}.parquet (any variant that uses this file)."""
    for v in feedback_variants(wc.dataset).values():
        if v.source == "teacher" and v.teacher == wc.teacher:
            spec = _fb_relevance_spec(v, feedback_block(wc.dataset), config["seed"])
            if _fb_relevance_key(spec) == wc.key:
                return spec
    raise ValueError(f"no feedback variant of {wc.dataset} uses the relevance file {wc.teacher}/{wc.key}")


def feedback_variant_inputs(wc):
    v = feedback_variant(wc)
    inputs = {
        "model": f"{RESULTS}/{wc.dataset}/models/{v.model}/model.pt",
        "train": f"{RESULTS}/{wc.dataset}/data/train.parquet",
        "test": f"{RESULTS}/{wc.dataset}/data/test.parquet",
        "stats": f"{RESULTS}/{wc.dataset}/data/stats.json",
    }
    if v.source == "teacher" and any(v.forced(e) for e in range(1, v.epochs + 1)):
        inputs["relevance"] = feedback_relevance_file(wc.dataset, v)
    return inputs


def feedback_table_models(dataset):
    """Vanilla models shown in the table: every model a variant fine-tunes or takes relevance from."""
    names = []
    for v in feedback_variants(dataset).values():
        for m in [v.model] + ([v.teacher] if v.source == "teacher" else []):
            if m not in names:
                names.append(m)
    return sorted(names, key=lambda m: (m != "student", m))


def distill_feedback_targets():
    """Final targets of the stage: per dataset the results table (which needs every variant)."""
    return [
        f"{RESULTS}/{d}/distill/feedback/{name}"
        for d in feedback_datasets()
        for name in ("table.csv", "table.md", "curves.png")
    ]


rule feedback_relevance:
    input:
        model=f"{RESULTS}/{{dataset}}/models/{{teacher}}/model.pt",
        train=f"{RESULTS}/{{dataset}}/data/train.parquet",
    output:
        relevance=f"{FEEDBACK}/relevance/{{teacher}}/{{key}}.parquet",
        info=f"{FEEDBACK}/relevance/{{teacher}}/{{key}}.json",
    wildcard_constraints:
        dataset=TEXT_PATTERN,
        teacher="[a-z][a-z0-9_]*",
        key="[a-z0-9_]+",
    params:
        spec=feedback_relevance_spec,
        batch_docs=lambda wc: feedback_block(wc.dataset)["relevance_batch"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/feedback_relevance_{{teacher}}_{{key}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/feedback_relevance_{{teacher}}_{{key}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/distill_feedback_relevance.py"


rule distill_feedback:
    input:
        unpack(feedback_variant_inputs),
    output:
        model=f"{FEEDBACK}/{{variant}}/model.pt",
        metrics=f"{FEEDBACK}/{{variant}}/metrics.json",
        history=f"{FEEDBACK}/{{variant}}/history.csv",
        curve=report(
            f"{FEEDBACK}/{{variant}}/curve.png",
            caption="../report/distill_feedback_curve.rst",
            category="5 Distillation",
            subcategory="{dataset} feedback",
        ),
    wildcard_constraints:
        dataset=TEXT_PATTERN,
        variant="[a-z][a-z0-9_]*",
    params:
        variant=lambda wc: feedback_variant(wc).to_dict(),
        block=lambda wc: {
            k: feedback_block(wc.dataset)[k] for k in ("max_train_docs", "max_test_docs", "eval_train")
        },
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/distill_feedback_{{variant}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/distill_feedback_{{variant}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/distill_feedback.py"


rule distill_feedback_table:
    input:
        metrics=lambda wc: [
            f"{RESULTS}/{wc.dataset}/distill/feedback/{v}/metrics.json" for v in feedback_variants(wc.dataset)
        ],
        histories=lambda wc: [
            f"{RESULTS}/{wc.dataset}/distill/feedback/{v}/history.csv" for v in feedback_variants(wc.dataset)
        ],
        models=lambda wc: [
            f"{RESULTS}/{wc.dataset}/models/{m}/metrics.json" for m in feedback_table_models(wc.dataset)
        ],
    output:
        table=report(
            f"{FEEDBACK}/table.csv",
            caption="../report/distill_feedback_table.rst",
            category="5 Distillation",
            subcategory="{dataset} feedback",
        ),
        markdown=f"{FEEDBACK}/table.md",
        curves=report(
            f"{FEEDBACK}/curves.png",
            caption="../report/distill_feedback_curves.rst",
            category="5 Distillation",
            subcategory="{dataset} feedback",
        ),
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        variants=lambda wc: list(feedback_variants(wc.dataset)),
        models=lambda wc: feedback_table_models(wc.dataset),
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/distill_feedback_table.log",
    benchmark:
        f"{BENCH}/{{dataset}}/distill_feedback_table.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/distill_feedback_table.py"
