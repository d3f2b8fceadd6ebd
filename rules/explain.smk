# Stage 5 — relevance maps: select the documents once per (dataset, model), then explain them with every
# configured method variant (<dataset>.explain.methods: name -> {method: registered name, **params}).


rule select_documents:
    input:
        model=f"{RESULTS}/{{dataset}}/models/{{model}}/model.pt",
        test=f"{RESULTS}/{{dataset}}/data/test.parquet",
        vocab=f"{RESULTS}/{{dataset}}/embedding/vocab.txt",
    output:
        documents=f"{RESULTS}/{{dataset}}/explain/{{model}}/documents.parquet",
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        per_class=lambda wc: explain_cfg(wc)["documents_per_class"],
        misclassified=lambda wc: explain_cfg(wc)["misclassified"],
        max_doc_len=lambda wc: explain_cfg(wc)["max_doc_len"],
        model_max_len=lambda wc: config[wc.dataset]["models"][wc.model].get("max_len"),
        seed=config["seed"],
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/select_documents_{{model}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/select_documents_{{model}}.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/select_documents.py"


rule explain:
    input:
        documents=rules.select_documents.output.documents,
        model=f"{RESULTS}/{{dataset}}/models/{{model}}/model.pt",
        vocab=f"{RESULTS}/{{dataset}}/embedding/vocab.txt",
    output:
        relevance=f"{RESULTS}/{{dataset}}/explain/{{model}}/{{method}}/relevance.parquet",
        params=f"{RESULTS}/{{dataset}}/explain/{{model}}/{{method}}/params.json",
        timing=f"{RESULTS}/{{dataset}}/explain/{{model}}/{{method}}/timing.json",
        heatmaps=report(
            directory(f"{RESULTS}/{{dataset}}/explain/{{model}}/{{method}}/heatmaps"),
            patterns=["{name}.png"],
            caption="../report/heatmap.rst",
            category="4 Relevance maps",
            subcategory="{dataset} {method}",
        ),
    wildcard_constraints:
        dataset=TEXT_PATTERN,
        method="[a-z][a-z0-9_]*",
    params:
        method=lambda wc: method_cfg(wc),
        target=lambda wc: explain_cfg(wc)["target"],
        heatmaps=lambda wc: explain_cfg(wc)["heatmaps"],
        seed=config["seed"],
        device=config["device"],
    threads: config["explain_threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/{{dataset}}/explain_{{model}}_{{method}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/explain_{{model}}_{{method}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/explain.py"
