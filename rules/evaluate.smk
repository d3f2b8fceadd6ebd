# Stage 6 — deletion and distortion curves per (dataset, model, method variant), the random-order
# baseline, and per (dataset, model) the figures (one per curve and replacement mode) and ranking table.


ruleorder: evaluate_random > evaluate  # "random" is the baseline, not a configured variant


def eval_variants(wc):
    return list(config[wc.dataset]["explain"]["methods"]) + ["random"]


rule evaluate:
    input:
        documents=f"{RESULTS}/{{dataset}}/explain/{{model}}/documents.parquet",
        relevance=f"{RESULTS}/{{dataset}}/explain/{{model}}/{{method}}/relevance.parquet",
        model=f"{RESULTS}/{{dataset}}/models/{{model}}/model.pt",
        vocab=f"{RESULTS}/{{dataset}}/embedding/vocab.txt",
    output:
        curves=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/{{method}}/curves.csv",
        summary=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/{{method}}/summary.json",
        per_doc=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/{{method}}/per_doc.parquet",
    wildcard_constraints:
        dataset=TEXT_PATTERN,
        method="[a-z][a-z0-9_]*",
    params:
        evaluate=lambda wc: config[wc.dataset]["evaluate"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/evaluate_{{model}}_{{method}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/evaluate_{{model}}_{{method}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    script:
        "../scripts/evaluate.py"


rule evaluate_random:
    input:
        documents=f"{RESULTS}/{{dataset}}/explain/{{model}}/documents.parquet",
        model=f"{RESULTS}/{{dataset}}/models/{{model}}/model.pt",
        vocab=f"{RESULTS}/{{dataset}}/embedding/vocab.txt",
    output:
        curves=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/random/curves.csv",
        summary=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/random/summary.json",
        per_doc=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/random/per_doc.parquet",
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        evaluate=lambda wc: config[wc.dataset]["evaluate"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/evaluate_{{model}}_random.log",
    benchmark:
        f"{BENCH}/{{dataset}}/evaluate_{{model}}_random.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    script:
        "../scripts/evaluate.py"


rule evaluation_figures:
    input:
        summaries=lambda wc: [
            f"{RESULTS}/{wc.dataset}/evaluate/{wc.model}/{v}/summary.json" for v in eval_variants(wc)
        ],
        curves=lambda wc: [
            f"{RESULTS}/{wc.dataset}/evaluate/{wc.model}/{v}/curves.csv" for v in eval_variants(wc)
        ],
    output:
        ranking=report(
            f"{RESULTS}/{{dataset}}/evaluate/{{model}}/ranking.csv",
            caption="../report/ranking.rst",
            category="3 Evaluation",
            subcategory="{dataset}",
        ),
        ranking_md=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/ranking.md",
        correctness=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/correctness.csv",
        correctness_md=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/correctness.md",
        figures=report(
            directory(f"{RESULTS}/{{dataset}}/evaluate/{{model}}/figures"),
            patterns=["{name}.png"],
            caption="../report/deletion_curves.rst",
            category="3 Evaluation",
            subcategory="{dataset}",
        ),
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        variants=lambda wc: {
            **{v: m["method"] for v, m in config[wc.dataset]["explain"]["methods"].items()},
            "random": "random",
        },
        palette=lambda wc: method_palette(),  # every variant of the run: one colour per variant everywhere
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/evaluation_figures_{{model}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/evaluation_figures_{{model}}.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/evaluation_figures.py"
