# Issue 6 (text part) — feedback distillation (report 7.1, 7.2.1, 7.2.2) and self-feedback fine-tuning
# (report 8): config section `distill_feedback: {datasets: {<dataset>: {variants: {<name>: {...}}}}}`.
# Per variant: fine-tune a trained model (the student, or the teacher itself for self-feedback) with
# forced batches whose copies keep / lose the top-k relevant words. The teacher's relevance of the training
# set is computed once per (teacher, method, parameters, target, max_len, subset) and shared by variants.


include: "functions/distill_feedback.smk"  # FEEDBACK, the variants, their inputs and relevance files, the targets


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
        timing=f"{FEEDBACK}/{{variant}}/timing.json",
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
