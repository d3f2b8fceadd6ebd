# Helpers of rules/xdistill.smk (functions only): the xdistill section (checked before any job), its datasets,
# the per-dataset params and inputs, and the stage's final targets.

XDISTILL = f"{RESULTS}/xdistill"
XDISTILL_EXPLAINERS = {"shap": {}, "gradcam": {}, "lime": {}}  # the schema's default


def _xdistill_section():
    return config.get("xdistill") or {}


def xdistill_datasets():
    """Datasets of the stage; mnist (images from the pipeline's MNIST data stage) follows 'datasets'."""
    return [d for d in _xdistill_section().get("datasets") or [] if d != "mnist" or "mnist" in config["datasets"]]


def xdistill_explainers(dataset):
    return (_xdistill_section()[dataset].get("evaluate") or {}).get("explainers", XDISTILL_EXPLAINERS)


def _xdistill_check():
    """Stop before any job: missing sections or data stages, unknown methods or method parameters."""
    section = _xdistill_section()
    if not section:
        return
    from xaipipe.distill.xdistill.explainers import EXPLAINERS
    from xaipipe.distill.xdistill.methods import get_method
    from xaipipe.errors import XaipipeError

    for d in xdistill_datasets():
        if d not in section:
            raise ValueError(f"config: xdistill.datasets lists {d!r} but there is no xdistill.{d} section")
        for variant, m in section[d]["methods"].items():
            try:
                get_method(dict(m))
            except XaipipeError as exc:
                raise ValueError(f"config: xdistill.{d}.methods.{variant}: {exc}") from None
        for name in xdistill_explainers(d):
            if name not in EXPLAINERS:
                raise ValueError(f"config: xdistill.{d}.evaluate.explainers: unknown explainer {name!r}")


if workflow.is_main_process:  # jobs re-read the Snakefile; the main process checked the config
    _xdistill_check()

XDISTILL_PATTERN = "|".join(xdistill_datasets()) or "(?!x)x"


def xdistill_cfg(wildcards):
    return _xdistill_section()[wildcards.xdset]


def xdistill_part(part):
    """Params function: one sub-section of a dataset's config (so that only its consumers rerun)."""
    return lambda wc: xdistill_cfg(wc).get(part, {})


def xdistill_method(wildcards):
    methods = xdistill_cfg(wildcards)["methods"]
    if wildcards.variant not in methods:
        raise ValueError(f"no variant {wildcards.variant!r} under xdistill.{wildcards.xdset}.methods")
    return methods[wildcards.variant]


def xdistill_data(split):
    """The dataset's images: MNIST from the data stage, CIFAR-10 from xdistill_cifar_data."""

    def f(wc):
        if wc.xdset == "mnist":
            return f"{RESULTS}/mnist/data/{split}.npz"
        return f"{XDISTILL}/{wc.xdset}/data/{split}.npz"

    return f


def xdistill_student_inputs(wildcards):
    """The CAE is an input only of the variants whose method fuses it (XDistillation)."""
    from xaipipe.distill.xdistill.methods import METHODS

    if METHODS[xdistill_method(wildcards)["method"]].needs_cae:
        return {"cae": f"{XDISTILL}/{wildcards.xdset}/cae/model.pt"}
    return {}


def xdistill_variants(wildcards):
    return list(xdistill_cfg(wildcards)["methods"])


def xdistill_targets():
    """Final targets: Tables II-V, the example figures of every explainer and the CAE examples."""
    out = []
    for d in xdistill_datasets():
        base = f"{XDISTILL}/{d}"
        out += [f"{base}/tables/table{i}.{ext}" for i in (2, 3, 4, 5) for ext in ("csv", "md")]
        out += [f"{base}/figures/{e}.png" for e in xdistill_explainers(d)]
        out.append(f"{base}/cae/examples.png")
    return out
