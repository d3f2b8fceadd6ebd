# XNet (issue #10; David & Liu, 002_8ecab4f1e6369166.txt): drop-loss training of explainable neurons.
# Config section `xnet` (config/schema/xnet.yaml). Every variant under xnet.variants is trained on every
# dataset under xnet.datasets; outputs under results/xnet/<dataset>/:
#   <variant>/{model.pt, metrics.json, droploss.csv, activations.csv, droploss.png, timing.json}
#   table1.csv, table1.md, figures/figure1_droploss.png, figures/figure2_activations.png
# mnist and ng20 use the data stage's prepared files; celeba is fetched here (official files, md5-checked).


include: "functions/xnet.smk"  # XNET, XNET_DATASETS, XNET_VARIANTS, XNET_PATTERN, inputs and params


rule xnet_fetch_celeba:
    output:
        manifest=f"{RESULTS}/xnet/celeba/data/manifest.json",
    params:
        raw_dir=config["raw_dir"],
        mirror=config["data_mirror"],
        offline=config["offline"],
        verify=config["verify_checksums"],
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/xnet/celeba/fetch.log",
    benchmark:
        f"{BENCH}/xnet/celeba/fetch.tsv"
    resources:
        mem_mb=1000,
        runtime=120,
    script:
        "../scripts/xnet_fetch.py"


rule xnet_train:
    input:
        unpack(xnet_inputs),
    output:
        model=f"{RESULTS}/xnet/{{dataset}}/{{variant}}/model.pt",
        metrics=f"{RESULTS}/xnet/{{dataset}}/{{variant}}/metrics.json",
        droploss=f"{RESULTS}/xnet/{{dataset}}/{{variant}}/droploss.csv",
        activations=f"{RESULTS}/xnet/{{dataset}}/{{variant}}/activations.csv",
        plot=report(
            f"{RESULTS}/xnet/{{dataset}}/{{variant}}/droploss.png",
            caption="../report/xnet_droploss.rst",
            category="7 XNet",
            subcategory="{dataset}",
        ),
        timing=f"{RESULTS}/xnet/{{dataset}}/{{variant}}/timing.json",
    wildcard_constraints:
        dataset=XNET_PATTERN,
        variant="[a-z][a-z0-9_]*",
    params:
        data=xnet_section("data"),
        model=xnet_section("model"),
        training=xnet_section("training"),
        variant=xnet_variant_cfg,
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xnet/{{dataset}}/train_{{variant}}.log",
    benchmark:
        f"{BENCH}/xnet/{{dataset}}/train_{{variant}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/xnet_train.py"


rule xnet_report:
    input:
        metrics=lambda wc: [f"{RESULTS}/xnet/{wc.dataset}/{v}/metrics.json" for v in XNET_VARIANTS],
        droploss=lambda wc: [f"{RESULTS}/xnet/{wc.dataset}/{v}/droploss.csv" for v in XNET_VARIANTS],
        activations=lambda wc: [f"{RESULTS}/xnet/{wc.dataset}/{v}/activations.csv" for v in XNET_VARIANTS],
    output:
        table=report(
            f"{RESULTS}/xnet/{{dataset}}/table1.csv",
            caption="../report/xnet_table1.rst",
            category="7 XNet",
            subcategory="{dataset}",
        ),
        markdown=f"{RESULTS}/xnet/{{dataset}}/table1.md",
        figure1=report(
            f"{RESULTS}/xnet/{{dataset}}/figures/figure1_droploss.png",
            caption="../report/xnet_figure1.rst",
            category="7 XNet",
            subcategory="{dataset}",
        ),
        figure2=report(
            f"{RESULTS}/xnet/{{dataset}}/figures/figure2_activations.png",
            caption="../report/xnet_figure2.rst",
            category="7 XNet",
            subcategory="{dataset}",
        ),
    wildcard_constraints:
        dataset=XNET_PATTERN,
    params:
        variants=XNET_VARIANTS,
        figure2_stat=XNET.get("figure2_stat", "share_mean"),
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xnet/{{dataset}}/report.log",
    benchmark:
        f"{BENCH}/xnet/{{dataset}}/report.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/xnet_report.py"
