# Stage 6 — deletion and distortion curves per (dataset, model, method variant), the random-order
# baseline, and per (dataset, model) the figures (one per curve and replacement mode), the ranking tables
# with paired comparisons against the references, and the report's claims judged on the run; across
# datasets the claims summary (a report table).


include: "functions/evaluate.smk"  # eval_variants, curve_params, claims_files


ruleorder: evaluate_random > evaluate  # "random" is the baseline, not a configured variant


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
        evaluate=curve_params,
        seed=config["seed"],
        device=config["device"],
    threads: config["explain_threads"]
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
        evaluate=curve_params,
        seed=config["seed"],
        device=config["device"],
    threads: config["explain_threads"]
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
        per_doc=lambda wc: [
            f"{RESULTS}/{wc.dataset}/evaluate/{wc.model}/{v}/per_doc.parquet" for v in eval_variants(wc)
        ],
    output:
        ranking=report(
            f"{RESULTS}/{{dataset}}/evaluate/{{model}}/ranking.csv",
            caption="../report/ranking.rst",
            category="3 Evaluation",
            subcategory="{dataset}",
        ),
        ranking_md=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/ranking.md",
        distortion_ranking=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/distortion_ranking.csv",
        distortion_ranking_md=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/distortion_ranking.md",
        comparisons=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/comparisons.csv",
        claims=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/claims.csv",
        claims_md=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/claims.md",
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
        # paired comparisons: only the configured references (no greedy_gn -> compared with random only)
        references=lambda wc: [r for r in config[wc.dataset]["evaluate"].get("compare_to", ["greedy_gn", "random"])
                               if r in eval_variants(wc)],
        alpha=lambda wc: config[wc.dataset]["evaluate"].get("alpha", 0.05),
        permutations=lambda wc: config[wc.dataset]["evaluate"].get("permutations"),
        bootstrap=lambda wc: config[wc.dataset]["evaluate"].get("bootstrap", 1000),
        seed=config["seed"],
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


rule claims_summary:
    input:
        claims=lambda wc: list(claims_files().values()),
    output:
        csv=f"{RESULTS}/summary/claims.csv",
    params:
        sources=lambda wc: [{"dataset": d, "model": m, "path": p} for (d, m), p in claims_files().items()],
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/summary/claims.log",
    benchmark:
        f"{BENCH}/summary/claims.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/claims_summary.py"
