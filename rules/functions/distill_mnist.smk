# Helpers of rules/distill_mnist.smk (functions only): the distill_mnist section, its checks (before any job),
# the experiments, the teacher checkpoint and the stage's final targets.

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
