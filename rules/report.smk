# Stage 8 — report assembly: every table of the source reports (CSV, Markdown, LaTeX; the published value
# beside ours) under results/report/tables/, the comparison page of every explained model (one document under
# every method), and results/index.html: the results first (rankings, figures, correctness, teacher vs TF-IDF),
# then every artifact. One job per table (it depends only on the stage table it shows); the index depends on
# everything.


def report_tables():
    """name -> (stage table CSV, caption) for every active stage (a stage's table appears once the stage
    is configured)."""
    t = {"models_accuracy": (f"{RESULTS}/summary/models.csv",
                             "Test accuracy of every teacher and student (report sections 2 and 7)")}
    if distill_mnist_targets():
        t["mnist_kd_table1"] = (f"{RESULTS}/mnist/distill/kd/table1.csv",
                                "Explanation-guided KD on MNIST: misclassifications out of 10,000 (report Table 1)")
    for d in feedback_datasets():
        t[f"feedback_{d}"] = (f"{RESULTS}/{d}/distill/feedback/table.csv",
                              f"Feedback distillation and self-feedback, {d} (report sections 7.2 and 8)")
    if distill_places_targets():
        t["places365"] = (f"{RESULTS}/places365/table.csv", "Places2 teacher and students (report section 7.4)")
    if rnn_targets():
        t["rnn_table4_3"] = (f"{RESULTS}/rnn/tables/table4_3.csv",
                             "Parameter counts of the RNN cells (thesis draft Table 4.3)")
        t["rnn_table4_5"] = (f"{RESULTS}/rnn/tables/table4_5.csv",
                             "Test accuracy of the RNN cells against the criteria of Table 4.4 (thesis Table 4.5)")
    for d in xdistill_datasets():
        for n, cap in (("2", "accuracy of teacher and students (XDistillation Table II)"),
                       ("3", "parameters and accuracy of the distillation methods (Table III)"),
                       ("4", "mean squared distance of teacher and student explanations (Table IV)"),
                       ("5", "sign agreement of the top-k superpixels (Table V)")):
            t[f"xdistill_{d}_table{n}"] = (f"{RESULTS}/xdistill/{d}/tables/table{n}.csv", f"XDistillation {d}: {cap}")
    for d in XNET_DATASETS:
        t[f"xnet_{d}_table1"] = (f"{RESULTS}/xnet/{d}/table1.csv",
                                 f"XNet Table 1 on {d}: baseline vs XNet test accuracy beside the paper's CelebA values")
    if claims_files():
        t["claims"] = (f"{RESULTS}/summary/claims.csv",
                       "The report's claims on explanation methods (sections 6.1-6.5), checked on this run's curves")
    return t


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


def explained_models():
    """(dataset, model) of every explained model: the results part of the index, in config order."""
    return [{"dataset": d, "model": m} for d in config["datasets"]
            for m in ((config[d].get("explain") or {}).get("models") or [])]


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


def ranking_files(name="ranking.csv"):
    """title -> the ranking ``name`` of every explained model: ranking.csv (the deletion-curve rankings)
    or distortion_ranking.csv."""
    out = {}
    for d in config["datasets"]:
        ex = config[d].get("explain")
        for m in (ex or {}).get("models", []):
            out[f"{d} {m}"] = f"{RESULTS}/{d}/evaluate/{m}/{name}"
    return out


def distortion_ranking_files():
    """title -> distortion_ranking.csv of every explained model."""
    return ranking_files("distortion_ranking.csv")


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
