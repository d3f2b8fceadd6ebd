"""Configuration of the text feedback-distillation variants (report sections 7.1, 7.2.1, 7.2.2 and 8).

Torch-free on purpose: the Snakemake rules read it while the workflow is parsed (relevance file names,
inputs of each variant, config checks before any job starts).

A variant is one dict (config section ``distill_feedback.datasets.<dataset>.variants.<name>``); every
experiment of the report is a configuration of the one training loop in :mod:`.feedback`:

============================  ========  =======  ======  ======  ===  ==========
report experiment             mode      source   copies  masked  k    schedule
============================  ========  =======  ======  ======  ===  ==========
7.1 / 7.2.1 positive, 8 x 5   positive  teacher  8       5       6    alternate
7.1 / 7.2.1 single instance   positive  teacher  1       1       6    forced / alternate
7.2.2 negative, 8 x 5         negative  teacher  8       5       6    alternate
8.1 negative self-feedback    negative  self     1       1       3    alternate / forced
8.2 positive self-feedback    positive  self     1       1       5    alternate / forced
============================  ========  =======  ======  ======  ===  ==========

``positive``: in ``masked`` of the ``copies`` copies of a document every word outside its top ``k``
(by relevance) becomes the zero vector; ``negative``: the top ``k`` words become zero vectors. The other
``copies - masked`` copies are unchanged. ``source: teacher`` ranks words by the (fixed) teacher's
relevance, computed once for the training set; ``source: self`` ranks them by the relevance of the model
being fine-tuned, recomputed for every mini-batch on the current weights. ``schedule``: ``alternate``
(forced epochs 1, 3, 5, ..., normal "unforced" epochs in between), ``forced`` (every epoch), ``unforced``
(plain fine-tuning with the same optimiser: the control that separates the feedback from the extra
training).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import schema
from ..errors import ConfigError

MODES = ("positive", "negative")
SOURCES = ("teacher", "self")
SCHEDULES = ("alternate", "forced", "unforced")
TARGETS = ("pred", "label")
OPTIMIZERS = ("adam", "adamw", "sgd")

#: defaults of one variant, as declared in config/schema/distill_feedback.yaml. ``model: None`` =
#: ``student`` for ``source: teacher``, ``teacher`` for ``source: self``; ``max_len: None`` = the fine-tuned
#: model's training ``max_len``.
VARIANT_DEFAULTS: dict[str, Any] = schema.defaults("distill_feedback", "datasets", "*", "variants", "*")

#: defaults of one dataset block (``distill_feedback.datasets.<dataset>``)
DATASET_DEFAULTS: dict[str, Any] = schema.defaults("distill_feedback", "datasets", "*")

#: Final test accuracies of the report's feedback experiments (000_72da690358235a51.txt). ``start`` is
#: the vanilla accuracy the fine-tuning started from; a variant names the experiment it reproduces with
#: its ``paper`` key.
PUBLISHED: dict[str, dict[str, Any]] = {
    "ng20_positive_8x5_alternate": {
        "dataset": "ng20", "accuracy": 0.5941, "start": 0.585, "where": "7.1, Figure 27"},
    "ng20_positive_single_forced": {
        "dataset": "ng20", "accuracy": 0.5755, "start": 0.585, "where": "7.1"},
    "agnews_positive_8x5_alternate": {
        "dataset": "agnews", "accuracy": 0.8020, "start": 0.8108, "where": "7.2.1, Figure 28"},
    "agnews_positive_single_alternate": {
        "dataset": "agnews", "accuracy": 0.8087, "start": 0.8108, "where": "7.2.1"},
    "agnews_positive_forced_low_lr": {
        "dataset": "agnews", "accuracy": 0.7088, "start": 0.8108, "where": "7.2.1",
        "note": "forced epochs only with a reduced learning rate (the report gives neither the rate nor "
                "whether 8 copies or a single instance were used)"},
    "agnews_negative_8x5_alternate": {
        "dataset": "agnews", "accuracy": 0.8062, "start": 0.8108, "where": "7.2.2, Figure 29a"},
    "agnews_negative_single_alternate": {
        "dataset": "agnews", "accuracy": 0.8059, "start": 0.8108, "where": "7.2.2, Figure 29b",
        "note": "the report's text says the unimportant words were zeroed, as in 7.2.1; read here as its "
                "negative counterpart (important words zeroed)"},
    "agnews_self_negative_alternate": {
        "dataset": "agnews", "accuracy": 0.9128, "start": 0.9112, "where": "8.1, Figure 30"},
    "agnews_self_negative_forced": {
        "dataset": "agnews", "accuracy": 0.9143, "start": 0.9112, "where": "8.1, Figure 30"},
    "agnews_self_positive_alternate": {
        "dataset": "agnews", "accuracy": 0.25, "start": 0.9112, "where": "8.2, Figure 31a",
        "note": "training diverged (random classifier), attributed to a too large learning rate"},
    "agnews_self_positive_forced": {
        "dataset": "agnews", "accuracy": 0.84, "start": 0.9112, "where": "8.2, Figure 31b",
        "note": "slightly smaller learning rate: 88.54 % after the first epoch, 84 % after the 10th"},
    "agnews_self_positive_forced_lr1e-5": {
        "dataset": "agnews", "accuracy": 0.917, "start": 0.9112, "where": "8.2",
        "note": "learning rate of order 1e-5: 91.7 % within the first 3 epochs"},
}


@dataclass(frozen=True)
class FeedbackVariant:
    """One feedback fine-tuning experiment (see the module docstring for the fields)."""

    name: str
    mode: str = "positive"
    source: str = "teacher"
    model: str = "student"
    teacher: str = "teacher"
    copies: int = 8
    masked: int = 5
    k: int = 6
    relevance: dict = field(default_factory=lambda: {"method": "lrp_epsilon"})
    target: str = "pred"
    schedule: str = "alternate"
    epochs: int = 10
    lr: float = 1e-4
    batch_size: int = 64
    optimizer: str = "adam"
    weight_decay: float = 0.0
    max_len: int | None = None
    max_train_docs: int | None = None
    paper: str | None = None

    @classmethod
    def from_config(cls, name: str, cfg: dict, models: dict | None = None) -> "FeedbackVariant":
        """Validate a configured variant and fill in the defaults.

        ``models`` (``<dataset>.models``) resolves ``max_len: null`` to the fine-tuned model's training
        length and checks that the named models exist."""
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name == "relevance":
            raise ConfigError(f"distill_feedback variant name {name!r}: use lower-case letters, digits and _ "
                              f"(starting with a letter); 'relevance' is reserved (the shared relevance folder)")
        unknown = sorted(set(cfg) - set(VARIANT_DEFAULTS))
        if unknown:
            raise ConfigError(f"distill_feedback variant {name!r}: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(VARIANT_DEFAULTS)}")
        c = {**VARIANT_DEFAULTS, **cfg}
        for key, allowed in (("mode", MODES), ("source", SOURCES), ("schedule", SCHEDULES),
                             ("target", TARGETS), ("optimizer", OPTIMIZERS)):
            if c[key] not in allowed:
                raise ConfigError(f"distill_feedback variant {name!r}: {key} = {c[key]!r}; use one of "
                                  f"{', '.join(allowed)}")
        for key in ("copies", "k", "epochs", "batch_size"):
            if int(c[key]) < 1:
                raise ConfigError(f"distill_feedback variant {name!r}: {key} must be >= 1, got {c[key]}")
        if not 0 <= int(c["masked"]) <= int(c["copies"]):
            raise ConfigError(f"distill_feedback variant {name!r}: masked = {c['masked']} must be between 0 "
                              f"and copies = {c['copies']} (masked copies per document)")
        if c["max_train_docs"] is not None and int(c["max_train_docs"]) < 1:
            raise ConfigError(f"distill_feedback variant {name!r}: max_train_docs must be >= 1 or null")
        if float(c["lr"]) <= 0:
            raise ConfigError(f"distill_feedback variant {name!r}: lr must be > 0, got {c['lr']}")
        rel = c["relevance"]
        if not isinstance(rel, dict) or not isinstance(rel.get("method"), str):
            raise ConfigError(f"distill_feedback variant {name!r}: relevance must be a mapping with a "
                              f"'method' (a registered explanation method, e.g. lrp_epsilon) and its parameters")
        if c["paper"] is not None and c["paper"] not in PUBLISHED:
            raise ConfigError(f"distill_feedback variant {name!r}: paper = {c['paper']!r} is not a published "
                              f"experiment; known: {', '.join(PUBLISHED)}")
        model = c["model"] or ("student" if c["source"] == "teacher" else "teacher")
        max_len = c["max_len"]
        if models is not None:
            needed = [model] + ([c["teacher"]] if c["source"] == "teacher" else [])
            for m in needed:
                if m not in models:
                    raise ConfigError(f"distill_feedback variant {name!r} needs model {m!r}, which is not in "
                                      f"the dataset's models ({', '.join(models)}); add it or set "
                                      f"{'teacher' if m == c['teacher'] else 'model'}: in the variant")
            if max_len is None:
                max_len = models[model].get("max_len")
        return cls(name=name, mode=c["mode"], source=c["source"], model=model, teacher=c["teacher"],
                   copies=int(c["copies"]), masked=int(c["masked"]), k=int(c["k"]), relevance=dict(rel),
                   target=c["target"], schedule=c["schedule"], epochs=int(c["epochs"]), lr=float(c["lr"]),
                   batch_size=int(c["batch_size"]), optimizer=c["optimizer"],
                   weight_decay=float(c["weight_decay"]), max_len=None if max_len is None else int(max_len),
                   max_train_docs=None if c["max_train_docs"] is None else int(c["max_train_docs"]),
                   paper=c["paper"])

    def to_dict(self) -> dict:
        return asdict(self)

    def train_docs(self, block: dict) -> int | None:
        """Training documents used (stratified subset size; ``None`` = all): the variant's own
        ``max_train_docs`` or else its dataset block's."""
        return self.max_train_docs if self.max_train_docs is not None else block.get("max_train_docs")

    def forced(self, epoch: int) -> bool:
        """Whether 1-based ``epoch`` is a forced (feedback) epoch: alternate = odd epochs."""
        if self.schedule == "forced":
            return True
        if self.schedule == "unforced":
            return False
        return epoch % 2 == 1


def dataset_block(section: dict | None, dataset: str) -> dict:
    """``distill_feedback.datasets.<dataset>`` with defaults (an empty block when absent)."""
    block = ((section or {}).get("datasets") or {}).get(dataset) or {}
    unknown = sorted(set(block) - set(DATASET_DEFAULTS))
    if unknown:
        raise ConfigError(f"distill_feedback.datasets.{dataset}: unknown key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(DATASET_DEFAULTS)}")
    return {**DATASET_DEFAULTS, **block}


def selected_variants(section: dict | None, dataset: str, models: dict | None = None) -> dict[str, FeedbackVariant]:
    """The variants of ``dataset`` that run (``run: null`` = all), validated, in config order."""
    block = dataset_block(section, dataset)
    variants = block["variants"] or {}
    run = block["run"]
    if run is not None:
        missing = [v for v in run if v not in variants]
        if missing:
            raise ConfigError(f"distill_feedback.datasets.{dataset}.run names {', '.join(missing)}, which "
                              f"are not among its variants ({', '.join(variants) or 'none'})")
    names = list(variants) if run is None else [v for v in variants if v in run]
    return {n: FeedbackVariant.from_config(n, variants[n] or {}, models) for n in names}


def relevance_spec(variant: FeedbackVariant, block: dict, seed: int) -> dict:
    """What the teacher's precomputed relevance of the training set depends on (``source: teacher``)."""
    return {"teacher": variant.teacher, "relevance": variant.relevance, "target": variant.target,
            "max_len": variant.max_len, "max_train_docs": variant.train_docs(block), "seed": int(seed)}


def relevance_key(spec: dict) -> str:
    """File stem of a relevance file: ``<method>_<10 hex digits of the spec's digest>``; variants with the
    same teacher, method, parameters, target, length and training subset share one file."""
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{spec['relevance']['method']}_{digest}"


def check_section(config: dict) -> None:
    """Check the whole ``distill_feedback`` section against the rest of the config (before any job):
    datasets, model names, ``run`` lists, published-experiment ids and explanation method names."""
    section = config.get("distill_feedback")
    if not section:
        return
    methods = set()
    for dataset in (section.get("datasets") or {}):
        if dataset not in config:
            raise ConfigError(f"distill_feedback.datasets.{dataset}: the config has no '{dataset}:' section")
        models = config[dataset].get("models", {})
        for v in selected_variants(section, dataset, models).values():
            methods.add(v.relevance["method"])
            if v.paper is not None and PUBLISHED[v.paper]["dataset"] != dataset:
                raise ConfigError(f"distill_feedback.datasets.{dataset}.variants.{v.name}: paper = {v.paper!r} "
                                  f"is an experiment on {PUBLISHED[v.paper]['dataset']}, not {dataset}")
    if methods:
        from ..method_params import declared_methods  # torch-free (the Snakefile parse does not load torch)

        unknown = sorted(methods - set(declared_methods()))
        if unknown:
            raise ConfigError(f"distill_feedback: unknown relevance method(s) {', '.join(unknown)}; known: "
                              f"{', '.join(declared_methods())}")
