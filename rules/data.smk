# Stage 1 — data: resolve raw files (raw folder -> mirror -> download, all checksummed), then clean,
# tokenise, subset and write one tidy file per split plus stats.json. A custom dataset (kind: custom) reads
# the user's own table(s) instead; they are inputs of fetch_data, so editing one reruns that dataset's chain.

from xaipipe.data.custom import table_inputs as custom_table_inputs


rule fetch_data:
    input:
        unpack(lambda wc: custom_table_inputs(wc.dataset, config.get(wc.dataset))),
    output:
        manifest=f"{RESULTS}/{{dataset}}/data/manifest.json",
    params:
        raw_dir=config["raw_dir"],
        mirror=config["data_mirror"],
        offline=config["offline"],
        verify=config["verify_checksums"],
        optional=lambda wc: (
            ["train.csv"]
            if wc.dataset == "agnews"
            and config["agnews"].get("data", {}).get("resplit_from_test", "auto") is not False
            else []
        ),
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/{{dataset}}/fetch_data.log",
    benchmark:
        f"{BENCH}/{{dataset}}/fetch_data.tsv"
    resources:
        mem_mb=1000,
        runtime=60,
    script:
        "../scripts/fetch_data.py"


rule prepare_text:
    input:
        manifest=rules.fetch_data.output.manifest,
    output:
        train=f"{RESULTS}/{{dataset}}/data/train.parquet",
        test=f"{RESULTS}/{{dataset}}/data/test.parquet",
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
        histogram=report(
            f"{RESULTS}/{{dataset}}/data/length_histogram.png",
            caption="../report/length_histogram.rst",
            category="1 Data",
        ),
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        data=lambda wc: config[wc.dataset].get("data", {}),
        seed=config["seed"],
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/{{dataset}}/prepare_text.log",
    benchmark:
        f"{BENCH}/{{dataset}}/prepare_text.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/prepare_data.py"


rule prepare_images:
    input:
        manifest=rules.fetch_data.output.manifest,
    output:
        train=f"{RESULTS}/{{dataset}}/data/train.npz",
        test=f"{RESULTS}/{{dataset}}/data/test.npz",
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
    wildcard_constraints:
        dataset=IMAGE_PATTERN,
    params:
        data=lambda wc: config[wc.dataset].get("data", {}),
        seed=config["seed"],
    conda:
        "../envs/data.yaml"
    log:
        f"{LOGS}/{{dataset}}/prepare_images.log",
    benchmark:
        f"{BENCH}/{{dataset}}/prepare_images.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/prepare_data.py"
