# RNN stage — explainable-by-design recurrent cells (Chormai 2018, chapter 4): sequential MNIST /
# Fashion-MNIST, Shallow / Deep / DeepV2 / ConvDeep cells, deep Taylor LRP through time, Tables 4.3 and
# 4.5, Figures 4.7-4.9. Reads the config section `rnn` (config/schema/rnn.yaml); nothing runs without it.
#
#   results/rnn/<dataset>/<cell>_seq<S>/{model.pt, metrics.json, history.csv, timing.json, relevance.npz,
#       lrp.json}
#   results/rnn/figures/<dataset>/{fig4_7.png, fig4_8.png, fig4_9.png, fig4_9.csv}
#   results/rnn/tables/{table4_3,table4_5}.{csv,md}
#   results/rnn/<dataset>/data/{manifest.json, train.npz, test.npz, stats.json}   (datasets the stage
#       prepares itself: Fashion-MNIST, and MNIST when it is not one of the pipeline's `datasets`)


include: "functions/rnn.smk"  # RNN_PLAN, RNN_CFG, train_params, explain_params, the wildcard patterns


rule rnn_fetch:
    output:
        manifest=f"{RESULTS}/rnn/{{rnn_dataset}}/data/manifest.json",
    wildcard_constraints:
        rnn_dataset=RNN_OWN_DATA_PATTERN,
    params:
        raw_dir=config["raw_dir"],
        mirror=config["data_mirror"],
        offline=config["offline"],
        verify=config["verify_checksums"],
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/rnn/{{rnn_dataset}}/fetch.log",
    benchmark:
        f"{BENCH}/rnn/{{rnn_dataset}}/fetch.tsv"
    resources:
        mem_mb=1000,
        runtime=60,
    script:
        "../scripts/rnn_fetch.py"


rule rnn_prepare:
    input:
        manifest=rules.rnn_fetch.output.manifest,
    output:
        train=f"{RESULTS}/rnn/{{rnn_dataset}}/data/train.npz",
        test=f"{RESULTS}/rnn/{{rnn_dataset}}/data/test.npz",
        stats=f"{RESULTS}/rnn/{{rnn_dataset}}/data/stats.json",
    wildcard_constraints:
        rnn_dataset=RNN_OWN_DATA_PATTERN,
    params:
        dataset=lambda wc: wc.rnn_dataset,
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/rnn/{{rnn_dataset}}/prepare.log",
    benchmark:
        f"{BENCH}/rnn/{{rnn_dataset}}/prepare.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/rnn_prepare.py"


rule rnn_train:
    input:
        train=lambda wc: f"{RNN_PLAN.data_dir(RESULTS, wc.dataset)}/train.npz",
        test=lambda wc: f"{RNN_PLAN.data_dir(RESULTS, wc.dataset)}/test.npz",
    output:
        model=f"{RESULTS}/rnn/{{dataset}}/{{cell}}_seq{{seq}}/model.pt",
        metrics=f"{RESULTS}/rnn/{{dataset}}/{{cell}}_seq{{seq}}/metrics.json",
        history=f"{RESULTS}/rnn/{{dataset}}/{{cell}}_seq{{seq}}/history.csv",
        timing=f"{RESULTS}/rnn/{{dataset}}/{{cell}}_seq{{seq}}/timing.json",
    wildcard_constraints:
        dataset=RNN_DATASET_PATTERN,
        cell=RNN_CELL_PATTERN,
        seq="[0-9]+",
    params:
        rnn=lambda wc: train_params(RNN_CFG, wc.cell),
        seed=config["seed"],
        device=config["device"],
    threads: RNN_CFG.get("threads", 1)
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/rnn/{{dataset}}/train_{{cell}}_seq{{seq}}.log",
    benchmark:
        f"{BENCH}/rnn/{{dataset}}/train_{{cell}}_seq{{seq}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/rnn_train.py"


rule rnn_explain:
    input:
        model=rules.rnn_train.output.model,
        test=lambda wc: f"{RNN_PLAN.data_dir(RESULTS, wc.dataset)}/test.npz",
    output:
        relevance=f"{RESULTS}/rnn/{{dataset}}/{{cell}}_seq{{seq}}/relevance.npz",
        summary=f"{RESULTS}/rnn/{{dataset}}/{{cell}}_seq{{seq}}/lrp.json",
    wildcard_constraints:
        dataset=RNN_DATASET_PATTERN,
        cell=RNN_CELL_PATTERN,
        seq="[0-9]+",
    params:
        rnn=explain_params(RNN_CFG) if RNN_PLAN is not None else {},
        seed=config["seed"],
    threads: RNN_CFG.get("threads", 1)
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/rnn/{{dataset}}/explain_{{cell}}_seq{{seq}}.log",
    benchmark:
        f"{BENCH}/rnn/{{dataset}}/explain_{{cell}}_seq{{seq}}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/rnn_explain.py"


rule rnn_figures:
    input:
        relevance=lambda wc: [f"{RNN_PLAN.run_dir(RESULTS, *r)}/relevance.npz" for r in RNN_PLAN.runs(wc.dataset)],
    output:
        fig4_7=report(f"{RESULTS}/rnn/figures/{{dataset}}/fig4_7.png", caption="../report/rnn_fig4_7.rst",
                      category="7 RNN", subcategory="{dataset}"),
        fig4_8=report(f"{RESULTS}/rnn/figures/{{dataset}}/fig4_8.png", caption="../report/rnn_fig4_8.rst",
                      category="7 RNN", subcategory="{dataset}"),
        fig4_9=report(f"{RESULTS}/rnn/figures/{{dataset}}/fig4_9.png", caption="../report/rnn_fig4_9.rst",
                      category="7 RNN", subcategory="{dataset}"),
        fig4_9_csv=f"{RESULTS}/rnn/figures/{{dataset}}/fig4_9.csv",
    wildcard_constraints:
        dataset=RNN_DATASET_PATTERN,
    params:
        models=lambda wc: [[r[1], r[2]] for r in RNN_PLAN.runs(wc.dataset)],
        figures=RNN_CFG.get("figures", {}),
        seed=config["seed"],
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/rnn/{{dataset}}/figures.log",
    benchmark:
        f"{BENCH}/rnn/{{dataset}}/figures.tsv"
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        "../scripts/rnn_figures.py"


rule rnn_table4_3:
    output:
        csv=report(f"{RESULTS}/rnn/tables/table4_3.csv", caption="../report/rnn_table4_3.rst", category="7 RNN"),
        md=f"{RESULTS}/rnn/tables/table4_3.md",
    params:
        seqs=[1, 4, 7, 14],  # the thesis's columns, for every cell (built, not trained)
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/rnn/table4_3.log",
    benchmark:
        f"{BENCH}/rnn/table4_3.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/rnn_tables.py"


rule rnn_table4_5:
    input:
        metrics=lambda wc: [f"{RNN_PLAN.run_dir(RESULTS, *r)}/metrics.json" for r in RNN_PLAN.runs()],
    output:
        csv=report(f"{RESULTS}/rnn/tables/table4_5.csv", caption="../report/rnn_table4_5.rst", category="7 RNN"),
        md=f"{RESULTS}/rnn/tables/table4_5.md",
    params:
        runs=lambda wc: [list(r) for r in RNN_PLAN.runs()],
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/rnn/table4_5.log",
    benchmark:
        f"{BENCH}/rnn/table4_5.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/rnn_tables.py"
