# Issue 6 (MNIST part) — explanation-guided knowledge distillation (report 7.3, Table 1; section 9's
# all-classes variant): config section `distill_mnist`. One job per experiment of
# distill_mnist.experiments (a changed experiment reruns only itself and the table), one job for
# Table 1 and the test-error figure. The teacher is the pipeline's MNIST teacher (mnist.models.<teacher>).
DISTILL_MNIST = f"{RESULTS}/mnist/distill/kd"


def _distill_mnist_section():
    """The section, or {} when absent or when mnist is not among the datasets run (like the other
    per-dataset stages, the stage follows 'datasets')."""
    if "mnist" not in config["datasets"]:
        return {}
    return config.get("distill_mnist") or {}


def _distill_mnist_check():
    """Stop before any job on a bad section: unknown keys, impossible loss weights, missing teacher."""
    section = _distill_mnist_section()
    if not section:
        return
    from xaipipe.distill.mnist_kd import experiment_grid, resolve_settings

    settings = resolve_settings(section)
    if settings["teacher"] not in config["mnist"]["models"]:
        raise ValueError(
            f"config: distill_mnist.teacher = {settings['teacher']!r} is not a model under mnist.models "
            f"({', '.join(config['mnist']['models'])})"
        )
    experiment_grid(section)


if workflow.is_main_process:  # the config was checked by the main process
    _distill_mnist_check()


def distill_mnist_experiments():
    return list(_distill_mnist_section().get("experiments") or {})


def distill_mnist_settings(wildcards=None):
    """Shared settings of every experiment (the thread count does not change results)."""
    return {k: v for k, v in _distill_mnist_section().items() if k not in ("experiments", "threads")}


def distill_mnist_experiment(wildcards):
    exps = _distill_mnist_section().get("experiments") or {}
    if wildcards.experiment not in exps:
        raise ValueError(f"no experiment {wildcards.experiment!r} under distill_mnist.experiments")
    return exps[wildcards.experiment] or {}


def distill_mnist_teacher():
    """The teacher's checkpoint (the pipeline's MNIST model named by distill_mnist.teacher)."""
    from xaipipe.distill.mnist_kd import resolve_settings

    return f"{RESULTS}/mnist/models/{resolve_settings(_distill_mnist_section())['teacher']}/model.pt"


def distill_mnist_targets():
    """Final targets of the stage: Table 1 (which needs every experiment) and the figure."""
    if not _distill_mnist_section():
        return []
    return [f"{DISTILL_MNIST}/{name}" for name in ("table1.csv", "table1.md", "test_errors.png")]


rule distill_mnist_experiment:
    input:
        train=f"{RESULTS}/mnist/data/train.npz",
        test=f"{RESULTS}/mnist/data/test.npz",
        teacher=lambda wc: distill_mnist_teacher(),
    output:
        model=f"{DISTILL_MNIST}/{{experiment}}/model.pt",
        metrics=f"{DISTILL_MNIST}/{{experiment}}/metrics.json",
        history=f"{DISTILL_MNIST}/{{experiment}}/history.csv",
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
