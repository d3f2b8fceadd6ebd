# Stage 2 — embedding: word2vec (20NG) / fastText (AG News), trained on the training split or loaded
# from pretrained vectors; vocabulary + embedding matrix (index 0 = zero padding vector).


rule embedding:
    input:
        train=f"{RESULTS}/{{dataset}}/data/train.parquet",
        test=f"{RESULTS}/{{dataset}}/data/test.parquet",
    output:
        vocab=f"{RESULTS}/{{dataset}}/embedding/vocab.txt",
        vectors=f"{RESULTS}/{{dataset}}/embedding/vectors.npy",
        info=f"{RESULTS}/{{dataset}}/embedding/info.json",
    wildcard_constraints:
        dataset=TEXT_PATTERN,
    params:
        embedding=lambda wc: config[wc.dataset].get("embedding", {}),
        seed=config["seed"],
    threads: 1  # gensim is reproducible only with one worker thread
    conda:
        "../envs/embed.yaml"
    log:
        f"{LOGS}/{{dataset}}/embedding.log",
    benchmark:
        f"{BENCH}/{{dataset}}/embedding.tsv"
    resources:
        mem_mb=6000,
        runtime=120,
    script:
        "../scripts/embedding.py"
