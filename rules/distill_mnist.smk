# Issue 6 (MNIST part) — explanation-guided knowledge distillation (report 7.3, Table 1; section 9's
# all-classes variant): config section `distill_mnist`. One job per experiment of
# distill_mnist.experiments (a changed experiment reruns only itself and the table), one job for
# Table 1 and the test-error figure. The teacher is the pipeline's MNIST teacher (mnist.models.<teacher>).


include: "functions/distill_mnist.smk"  # DISTILL_MNIST, the section's experiments, settings and targets


rule distill_mnist_experiment:
    input:
        train=f"{RESULTS}/mnist/data/train.npz",
        test=f"{RESULTS}/mnist/data/test.npz",
        teacher=lambda wc: distill_mnist_teacher(),
    output:
        model=f"{DISTILL_MNIST}/{{experiment}}/model.pt",
        metrics=f"{DISTILL_MNIST}/{{experiment}}/metrics.json",
        history=f"{DISTILL_MNIST}/{{experiment}}/history.csv",
        timing=f"{DISTILL_MNIST}/{{experiment}}/timing.json",
    wildcard_constraints:
        experiment="[a-z][a-z0-9_]*",
    params:
        settings=distill_mnist_settings,
        experiment=distill_mnist_experiment,
        seed=config["seed"],
        device=config["device"],
    threads: _distill_mnist_section().get("threads", 1)
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/mnist/distill_kd_{{experiment}}.log",
    benchmark:
        f"{BENCH}/mnist/distill_kd_{{experiment}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/distill_mnist.py"


rule distill_mnist_table:
    input:
        metrics=lambda wc: [f"{DISTILL_MNIST}/{e}/metrics.json" for e in distill_mnist_experiments()],
        histories=lambda wc: [f"{DISTILL_MNIST}/{e}/history.csv" for e in distill_mnist_experiments()],
    output:
        table=report(
            f"{DISTILL_MNIST}/table1.csv",
            caption="../report/distill_mnist_table.rst",
            category="5 Distillation",
            subcategory="mnist explanation-guided KD",
        ),
        markdown=f"{DISTILL_MNIST}/table1.md",
        figure=report(
            f"{DISTILL_MNIST}/test_errors.png",
            caption="../report/distill_mnist_errors.rst",
            category="5 Distillation",
            subcategory="mnist explanation-guided KD",
        ),
    params:
        experiments=distill_mnist_experiments(),
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/mnist/distill_kd_table.log",
    benchmark:
        f"{BENCH}/mnist/distill_kd_table.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/distill_mnist.py"
