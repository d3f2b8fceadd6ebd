# Helpers of rules/distill_feedback.smk (functions only): the distill_feedback section (checked before any job),
# its datasets and variants, the shared teacher relevance files and the stage's final targets.

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
