# Stages 3-4 — teachers and student baselines: every model under <dataset>.models in the config.
# GPU-tagged: with resources.gpu > 0 a cluster profile requests GPUs for these jobs.


rule train_text_model:
    input:
        train=f"{RESULTS}/{{dataset}}/data/train.parquet",
        test=f"{RESULTS}/{{dataset}}/data/test.parquet",
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
        vocab=f"{RESULTS}/{{dataset}}/embedding/vocab.txt",
        vectors=f"{RESULTS}/{{dataset}}/embedding/vectors.npy",
    output:
        model=f"{RESULTS}/{{dataset}}/models/{{model}}/model.pt",
        metrics=f"{RESULTS}/{{dataset}}/models/{{model}}/metrics.json",
        history=f"{RESULTS}/{{dataset}}/models/{{model}}/history.csv",
        timing=f"{RESULTS}/{{dataset}}/models/{{model}}/timing.json",
        plot=report(
            f"{RESULTS}/{{dataset}}/models/{{model}}/history.png",
            caption="../report/training_curve.rst",
            category="2 Models",
            subcategory="{dataset}",
        ),
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        model=model_cfg,
        data=lambda wc: config[wc.dataset].get("data", {}),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/train_{{model}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/train_{{model}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/train_model.py"


rule tfidf_reference:
    input:
        train=f"{RESULTS}/{{dataset}}/data/train.parquet",
        test=f"{RESULTS}/{{dataset}}/data/test.parquet",
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
    output:
        metrics=f"{RESULTS}/{{dataset}}/reference/metrics.json",
        features=f"{RESULTS}/{{dataset}}/reference/top_features.csv",
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        reference=lambda wc: config[wc.dataset].get("reference", {}),
        seed=config["seed"],
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/tfidf_reference.log",
    benchmark:
        f"{BENCH}/{{dataset}}/tfidf_reference.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/tfidf_reference.py"


rule train_image_model:
    input:
        train=f"{RESULTS}/{{dataset}}/data/train.npz",
        test=f"{RESULTS}/{{dataset}}/data/test.npz",
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
    output:
        model=f"{RESULTS}/{{dataset}}/models/{{model}}/model.pt",
        metrics=f"{RESULTS}/{{dataset}}/models/{{model}}/metrics.json",
        history=f"{RESULTS}/{{dataset}}/models/{{model}}/history.csv",
        timing=f"{RESULTS}/{{dataset}}/models/{{model}}/timing.json",
        plot=report(
            f"{RESULTS}/{{dataset}}/models/{{model}}/history.png",
            caption="../report/training_curve.rst",
            category="2 Models",
            subcategory="{dataset}",
        ),
    wildcard_constraints:
        dataset=IMAGE_PATTERN,
    params:
        model=model_cfg,
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/train_{{model}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/train_{{model}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/train_model.py"


rule models_summary:
    input:
        metrics=lambda wc: [
            f"{RESULTS}/{d}/models/{m}/metrics.json" for d in config["datasets"] for m in config[d]["models"]
        ],
        references=lambda wc: reference_targets(),
    output:
        table=report(
            f"{RESULTS}/summary/models.csv",
            caption="../report/models_summary.rst",
            category="2 Models",
        ),
        markdown=f"{RESULTS}/summary/models.md",
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/models_summary.log",
    benchmark:
        f"{BENCH}/models_summary.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/models_summary.py"
