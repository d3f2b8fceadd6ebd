# Stage 8 — report assembly: every table of the source reports (CSV, Markdown, LaTeX; the published value
# beside ours) under results/report/tables/, the comparison page of every explained model (one document under
# every method), and results/index.html: the results first (rankings, figures, correctness, teacher vs TF-IDF),
# then every artifact. One job per table (it depends only on the stage table it shows); the index depends on
# everything.


include: "functions/report.smk"  # report_tables, explained_models, ranking_files


rule report_table:
    input:
        table=lambda wc: report_tables()[wc.name][0],
    output:
        csv=f"{RESULTS}/report/tables/{{name}}.csv",
        md=f"{RESULTS}/report/tables/{{name}}.md",
        tex=f"{RESULTS}/report/tables/{{name}}.tex",
    params:
        caption=lambda wc: report_tables()[wc.name][1],
    wildcard_constraints:
        name="[a-z0-9_]+",
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/report/table_{{name}}.log",
    benchmark:
        f"{BENCH}/report/table_{{name}}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/report_table.py"


rule compare_page:
    input:
        documents=f"{RESULTS}/{{dataset}}/explain/{{model}}/documents.parquet",
        relevance=lambda wc: [
            f"{RESULTS}/{wc.dataset}/explain/{wc.model}/{v}/relevance.parquet" for v in explain_cfg(wc)["methods"]
        ],
        per_doc=lambda wc: [
            f"{RESULTS}/{wc.dataset}/evaluate/{wc.model}/{v}/per_doc.parquet" for v in eval_variants(wc)
        ],
        ranking=f"{RESULTS}/{{dataset}}/evaluate/{{model}}/ranking.csv",
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
    output:
        page=f"{RESULTS}/{{dataset}}/compare/{{model}}/index.html",
        docs=directory(f"{RESULTS}/{{dataset}}/compare/{{model}}/docs"),
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        methods=lambda wc: {v: m["method"] for v, m in explain_cfg(wc)["methods"].items()},
        links=lambda wc: {
            "results index": "../../../index.html",
            "ranking": f"../../evaluate/{wc.model}/ranking.md",
            "correctness": f"../../evaluate/{wc.model}/correctness.md",
            "deletion curves": f"../../evaluate/{wc.model}/figures/",
        },
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/{{dataset}}/compare_page_{{model}}.log",
    benchmark:
        f"{BENCH}/{{dataset}}/compare_page_{{model}}.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/compare_page.py"


rule report_index:
    input:
        artifacts=lambda wc: all_targets(report=False),
        tables=lambda wc: [f"{RESULTS}/report/tables/{n}.csv" for n in report_tables()],
        readme=f"{RESULTS}/report/README_results.md",  # listed in the index too
    output:
        index=f"{RESULTS}/index.html",
    params:
        config=config,
        tables=lambda wc: [{"name": n, "caption": c} for n, (_, c) in report_tables().items()],
        explained=lambda wc: explained_models(),
        results=lambda wc, output: os.path.dirname(output.index),  # results/, the folder the index links into
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/report/index.log",
    benchmark:
        f"{BENCH}/report/index.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/report_index.py"


rule report_readme:
    input:
        tables=lambda wc: [f"{RESULTS}/report/tables/{n}.md" for n in report_tables()],
        rankings=lambda wc: list(ranking_files().values()),
        distortion=lambda wc: list(distortion_ranking_files().values()),
    output:
        md=f"{RESULTS}/report/README_results.md",
    params:
        config=config,
        tables=lambda wc: [{"name": n, "caption": c} for n, (_, c) in report_tables().items()],
        rankings=lambda wc: ranking_files(),
        distortion=lambda wc: distortion_ranking_files(),
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/report/readme.log",
    benchmark:
        f"{BENCH}/report/readme.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/report_readme.py"
