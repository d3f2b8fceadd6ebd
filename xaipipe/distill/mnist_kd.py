"""Explanation-guided knowledge distillation on MNIST (report section 7.3, Table 1; section 9's variant).

A fixed teacher MLP (784-1200-1200-10, dropout, weight decay; the pipeline's MNIST teacher) trains a
student MLP (784-800-10, no dropout, no weight decay) with, per mini-batch,

    L = α_k · T² · KL(p ‖ q) + (1 − α_k − α_m) · CE(s, y) + α_m · MSE(R_s, R_t)

(``p``, ``q``: teacher and student softmax at temperature ``T``; ``s``: student softmax; Hinton et al.
2015). ``R_s`` and ``R_t`` are the relevance maps (RAP by default, :mod:`.relevance`) of the
ground-truth class, each scaled to ``[0, 1]``; the MSE term covers only the samples the teacher
classifies correctly and is divided by their number, the other two terms by the batch size. With
``maps: all`` the MSE runs over the maps of all 10 classes (section 9, "Further Thoughts"). The
variational run uses ``α_m(i) = 1 − 0.5 · 0.95^i`` with ``α_k = 0`` (``i``: 0-based epoch index, so
the first epoch is Ex-9's 50/50 mix).

Every experiment of Table 1 is one entry of the config grid (:func:`experiment_grid`); one run per
experiment (:func:`run_experiment`), one table and figure over all (:func:`build_table`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import schema
from ..data.split import sklearn_stratified_subset
from ..errors import ConfigError, XaipipeError
from ..fitting import EpochData, EpochStats, Settings, Step, fit
from ..io import atomic_path, read_json, write_json
from ..models import MLP, build_model, count_parameters, load_checkpoint, save_checkpoint
from ..train import Split, load_mnist_npz, predict, resolve_device, set_seed
from ..losses import LossInputs, Objective, register_term
from .relevance import RELEVANCE, SCALINGS, all_classes, relevance_from_trace, scale_maps, trace_mlp

log = logging.getLogger(__name__)

# --- the published Table 1 (report section 7.3) ------------------------------------------------------
# experiment -> (alpha_k, alpha_m, T, misclassifications of 10,000). Ex-3 and Ex-4 are printed with the
# same settings and result. "variational": alpha_m(i) = 1 - 0.5 * 0.95^i, alpha_k = 0 (140 errors).
PUBLISHED_TABLE1: dict[str, dict[str, Any]] = {
    "ex1": {"alpha_k": 0.0, "alpha_m": 0.0, "temperature": None, "misclassifications": 132},
    "ex2": {"alpha_k": 0.75, "alpha_m": 0.0, "temperature": 5.0, "misclassifications": 108},
    "ex3": {"alpha_k": 0.25, "alpha_m": 0.0, "temperature": 10.0, "misclassifications": 112},
    "ex4": {"alpha_k": 0.25, "alpha_m": 0.0, "temperature": 10.0, "misclassifications": 112},
    "ex5": {"alpha_k": 1.0, "alpha_m": 0.0, "temperature": 5.0, "misclassifications": 118},
    "ex6": {"alpha_k": 0.0, "alpha_m": 1.0, "temperature": None, "misclassifications": 8800},
    "ex7": {"alpha_k": 0.5, "alpha_m": 0.5, "temperature": 10.0, "misclassifications": 116},
    "ex8": {"alpha_k": 0.33, "alpha_m": 0.33, "temperature": 10.0, "misclassifications": 117},
    "ex9": {"alpha_k": 0.0, "alpha_m": 0.5, "temperature": None, "misclassifications": 126},
    "variational": {"alpha_k": 0.0, "alpha_m": None, "temperature": None,
                    "alpha_m_schedule": {"start": 1.0, "scale": 0.5, "decay": 0.95}, "misclassifications": 140},
}
PUBLISHED_TEACHER_ERRORS = 75  # section 7.3.1: 99.25 % accuracy
PAPER_TEST_SIZE = 10_000

#: defaults of the shared settings, as declared in config/schema/distill_mnist.yaml
DEFAULTS: dict[str, Any] = schema.defaults("distill_mnist")


# --- the experiment grid -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LossWeights:
    """Weights of the three terms: KD (α_k), cross-entropy (1 − α_k − α_m), map MSE (α_m)."""

    kd: float
    ce: float
    mse: float


def variational_alpha_m(i: int, start: float = 1.0, scale: float = 0.5, decay: float = 0.95) -> float:
    """Section 7.3.2: ``α_m(i) = start − scale · decay^i`` (paper: 1, 0.5, 0.95)."""
    return start - scale * decay ** i


@dataclass(frozen=True)
class Experiment:
    """One row of Table 1: fixed weights (``alpha_m``) or the variational schedule."""

    name: str
    alpha_k: float
    alpha_m: float | None
    temperature: float | None
    schedule: tuple[float, float, float] | None = None   # (start, scale, decay) of alpha_m(i)
    maps: str = "target"                                 # "target" (ground truth) or "all" classes
    seed: int | None = None
    paper: str | None = None                             # the Table-1 row it reproduces

    def weights(self, epoch_index: int) -> LossWeights:
        """Loss weights for the epoch with 0-based index ``epoch_index``."""
        am = variational_alpha_m(epoch_index, *self.schedule) if self.schedule else float(self.alpha_m)
        return LossWeights(kd=self.alpha_k, ce=1.0 - self.alpha_k - am, mse=am)

    @property
    def uses_maps(self) -> bool:
        return self.schedule is not None or bool(self.alpha_m)

    @property
    def alpha_m_label(self) -> str:
        if self.schedule:
            s, c, d = self.schedule
            return f"{s:g} - {c:g}*{d:g}^i"
        return f"{self.alpha_m:g}"

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> "Experiment":
        where = f"distill_mnist.experiments.{name}"
        known = {"alpha_k", "alpha_m", "temperature", "alpha_m_schedule", "maps", "seed", "paper"}
        unknown = set(cfg) - known
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        alpha_k = float(cfg.get("alpha_k", 0.0))
        sched_cfg = cfg.get("alpha_m_schedule")
        alpha_m = cfg.get("alpha_m")
        if sched_cfg is not None and alpha_m is not None:
            raise ConfigError(f"{where}: give either alpha_m or alpha_m_schedule, not both")
        schedule = None
        if sched_cfg is not None:
            schedule = (float(sched_cfg.get("start", 1.0)), float(sched_cfg.get("scale", 0.5)),
                        float(sched_cfg.get("decay", 0.95)))
            if not 0 < schedule[2] <= 1 or schedule[1] < 0 or alpha_k + schedule[0] > 1 + 1e-9 \
                    or schedule[0] - schedule[1] < 0:
                raise ConfigError(f"{where}.alpha_m_schedule: need 0 <= start - scale, alpha_k + start <= 1 "
                                  f"and 0 < decay <= 1, got {sched_cfg}")
        else:
            alpha_m = float(alpha_m or 0.0)
        am_max = schedule[0] if schedule else alpha_m
        if alpha_k < 0 or am_max < 0 or alpha_k + am_max > 1 + 1e-9:
            raise ConfigError(f"{where}: need alpha_k >= 0, alpha_m >= 0 and alpha_k + alpha_m <= 1 (the CE "
                              f"weight is 1 - alpha_k - alpha_m), got alpha_k={alpha_k}, alpha_m={am_max}")
        temperature = cfg.get("temperature")
        if alpha_k > 0 and (temperature is None or float(temperature) <= 0):
            raise ConfigError(f"{where}: alpha_k > 0 needs a temperature > 0")
        maps = cfg.get("maps", "target")
        if maps not in ("target", "all"):
            raise ConfigError(f"{where}.maps must be 'target' (ground-truth class) or 'all', got {maps!r}")
        paper = cfg.get("paper", name if name in PUBLISHED_TABLE1 else None)
        if paper is not None and paper not in PUBLISHED_TABLE1:
            raise ConfigError(f"{where}.paper = {paper!r} is not a Table-1 row; known: {sorted(PUBLISHED_TABLE1)}")
        return cls(name=name, alpha_k=alpha_k, alpha_m=None if schedule else alpha_m,
                   temperature=None if temperature is None else float(temperature), schedule=schedule,
                   maps=maps, seed=cfg.get("seed"), paper=paper)

    def matches_paper(self) -> bool:
        """Whether the settings equal the published row's (maps over the target class only)."""
        if self.paper is None:
            return False
        p = PUBLISHED_TABLE1[self.paper]
        sched = p.get("alpha_m_schedule")
        same_m = (self.schedule == (sched["start"], sched["scale"], sched["decay"])) if sched else \
            (self.schedule is None and math.isclose(self.alpha_m or 0.0, p["alpha_m"]))
        same_t = (not self.alpha_k) or (p["temperature"] is not None
                                        and math.isclose(self.temperature or 0.0, p["temperature"]))
        return same_m and same_t and math.isclose(self.alpha_k, p["alpha_k"]) and self.maps == "target"


def experiment_grid(cfg: Mapping[str, Any]) -> dict[str, Experiment]:
    """All experiments of a ``distill_mnist`` config section, validated."""
    exps = cfg.get("experiments") or {}
    if not exps:
        raise ConfigError("distill_mnist.experiments is empty: list at least one experiment (see config.yaml)")
    return {name: Experiment.from_config(name, e or {}) for name, e in exps.items()}


def resolve_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Shared settings with defaults filled in and checked (``experiments`` excluded)."""
    s = {**DEFAULTS, **{k: v for k, v in cfg.items() if k != "experiments"}}
    unknown = set(s) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"distill_mnist: unknown key(s) {sorted(unknown)}; known: "
                          f"{sorted(DEFAULTS) + ['experiments']}")
    if s["relevance"] not in RELEVANCE:
        raise ConfigError(f"distill_mnist.relevance = {s['relevance']!r}; known: {', '.join(sorted(RELEVANCE))}")
    if s["scaling"] not in SCALINGS:
        raise ConfigError(f"distill_mnist.scaling = {s['scaling']!r}; known: {', '.join(SCALINGS)}")
    if s["optimizer"] not in ("adam", "adamw", "sgd"):
        raise ConfigError(f"distill_mnist.optimizer = {s['optimizer']!r}; use adam, adamw or sgd")
    if s["schedule"] not in ("cosine", "constant"):
        raise ConfigError(f"distill_mnist.schedule = {s['schedule']!r}; use cosine or constant")
    return s


# --- the loss ----------------------------------------------------------------------------------------
def masked_map_mse(student_maps: torch.Tensor, teacher_maps: torch.Tensor,
                   teacher_correct: torch.Tensor) -> torch.Tensor:
    """Σ over teacher-correct samples of the per-sample MSE (mean over maps and pixels), divided by
    their count (report section 7.3); 0 (with a graph) when the teacher gets none right."""
    per_sample = (student_maps - teacher_maps.detach()).pow(2).flatten(1).mean(1)
    mask = teacher_correct.to(per_sample.dtype)
    n = mask.sum()
    if float(n) == 0:
        return (per_sample * mask).sum()
    return (per_sample * mask).sum() / n


@register_term("map_mse")
def map_mse(inputs: LossInputs) -> torch.Tensor:
    """The loss term of :func:`masked_map_mse`: the model's relevance ``maps`` against the
    ``teacher_maps``, over the samples whose ``teacher_logits`` predict the ``labels``."""
    correct = inputs.need("teacher_logits", "map_mse").argmax(1) == inputs.need("labels", "map_mse")
    return masked_map_mse(inputs.need("maps", "map_mse"), inputs.need("teacher_maps", "map_mse"), correct)


def loss_terms(weights: LossWeights, temperature: float | None = None) -> Objective:
    """``(1−α_k−α_m) ce + α_k kd + α_m map_mse`` from the registered loss terms (``ce`` always, the others
    when their weight is not 0)."""
    terms: list[tuple] = [("ce", weights.ce)]
    if weights.kd:
        if temperature is None:
            raise XaipipeError("explanation_kd_loss: alpha_k > 0 needs a temperature")
        terms.append(("kd", weights.kd, {"temperature": float(temperature)}))
    if weights.mse:
        terms.append(("map_mse", weights.mse, {}, "mse"))
    return Objective(terms)


def explanation_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                        weights: LossWeights, temperature: float | None = None,
                        student_maps: torch.Tensor | None = None,
                        teacher_maps: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """``α_k T² KL(p‖q) + (1−α_k−α_m) CE + α_m MSE(R_s, R_t)`` (module docstring, :func:`loss_terms`) and
    its parts.

    KL and CE are means over the batch; the MSE is :func:`masked_map_mse` over the samples the
    teacher classifies correctly. Terms with weight 0 are not computed."""
    if weights.mse and (student_maps is None or teacher_maps is None):
        raise XaipipeError("explanation_kd_loss: alpha_m > 0 needs the student's and teacher's maps")
    total, values = loss_terms(weights, temperature)(LossInputs(
        logits=student_logits, labels=labels, teacher_logits=teacher_logits, maps=student_maps,
        teacher_maps=teacher_maps))
    parts: dict[str, float] = {k: float(v) for k, v in values.items()}
    if weights.mse:
        parts["teacher_correct"] = int((teacher_logits.argmax(1) == labels).sum())
    return total, parts


def batch_maps(method: str, scaling: str, trace, labels: torch.Tensor, maps: str) -> torch.Tensor:
    """Scaled maps ``(B, K, 28, 28)`` of a traced pass: ground-truth class (K = 1) or all classes."""
    n_classes = trace.logits.shape[1]
    targets = labels[:, None] if maps == "target" else all_classes(len(labels), n_classes, labels.device)
    return scale_maps(relevance_from_trace(method, trace, targets), scaling)


# --- one run -----------------------------------------------------------------------------------------
def load_teacher(path: str, settings: Mapping[str, Any], device: torch.device) -> tuple[nn.Module, dict]:
    """The pipeline's MNIST teacher, frozen and in eval mode; checks its architecture."""
    teacher, meta = load_checkpoint(path, map_location=device)
    if not isinstance(teacher, MLP):
        raise XaipipeError(f"{path}: the distillation teacher must be an MLP, got {type(teacher).__name__}")
    hidden = [m.out_features for m in teacher.modules() if isinstance(m, nn.Linear)][:-1]
    want = settings.get("teacher_hidden")
    if want is not None and hidden != list(want):
        raise XaipipeError(f"{path}: teacher hidden layers {hidden} differ from distill_mnist.teacher_hidden "
                           f"{list(want)}; train mnist.models.{settings['teacher']} with hidden: {list(want)} "
                           f"or set teacher_hidden: null")
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, {"hidden": hidden, **meta}


class TeacherCache:
    """The fixed teacher's logits ``(N, C)`` and, with ``maps``, its scaled ground-truth-class maps
    ``(N, 1, 28, 28)`` for every training image, computed once (no gradient) in batches."""

    def __init__(self, teacher: nn.Module, x: torch.Tensor, y: np.ndarray, method: str, scaling: str,
                 device: torch.device, maps: bool, batch_size: int = 1000):
        logits, rel = [], []
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                xb = x[i:i + batch_size].to(device)
                if maps:
                    tr = trace_mlp(teacher, xb)
                    yb = torch.from_numpy(y[i:i + batch_size]).to(device)
                    rel.append(batch_maps(method, scaling, tr, yb, "target").cpu())
                    logits.append(tr.logits.cpu())
                else:
                    logits.append(teacher(xb).cpu())
        self.logits = torch.cat(logits)
        self.maps = torch.cat(rel) if maps else None


def run_experiment(train_path: str, test_path: str, teacher_path: str, settings: Mapping[str, Any],
                   name: str, exp_cfg: Mapping[str, Any], seed: int, device: str,
                   outputs: Mapping[str, str]) -> dict:
    """Train one student of the grid; write ``model.pt``, ``history.csv``, ``metrics.json`` and, when
    ``outputs`` names it, ``timing.json`` (the wall times, kept apart so that the other files are
    byte-identical between runs).

    The student trains through the kernel (:func:`xaipipe.fitting.fit`); this study adds the loss of
    Table 1 on the cached teacher outputs and the history row. The student is evaluated on the test set
    after every epoch; ``metrics.json`` reports the last epoch (no selection on the test set)."""
    s = resolve_settings(settings)
    exp = Experiment.from_config(name, exp_cfg)
    seed = int(exp.seed if exp.seed is not None else seed)
    set_seed(seed, device=device)
    dev = resolve_device(device)
    x_tr, y_tr = load_mnist_npz(train_path)
    x_te, y_te = load_mnist_npz(test_path)
    tr_idx = sklearn_stratified_subset(y_tr, s["max_train"], seed)
    te_idx = sklearn_stratified_subset(y_te, s["max_test"], seed)
    train, test = Split(x_tr, y_tr).subset(tr_idx), Split(x_te, y_te).subset(te_idx)
    teacher, tmeta = load_teacher(teacher_path, s, dev)
    t_pred, _ = predict(teacher, test, int(s["eval_batch_size"]), dev)
    teacher_errors = int((t_pred != test.y).sum())

    torch.manual_seed(seed)  # the same initial student for every experiment of one seed
    kwargs = {"in_features": int(x_tr[0].numel()), "hidden": list(s["student_hidden"]), "n_classes": 10,
              "dropout": float(s["student_dropout"]), "input_dropout": 0.0}
    student = build_model("mlp", **kwargs).to(dev)
    bs, epochs = int(s["batch_size"]), int(s["epochs"])
    fit_settings = Settings(epochs=epochs, lr=s["lr"], optimizer=s["optimizer"], weight_decay=s["weight_decay"],
                            schedule=s["schedule"], warmup_epochs=float(s["warmup_epochs"]), seed=seed,
                            where="distill_mnist")
    log.info("%s: alpha_k %s, alpha_m %s, T %s, maps %s (%s, %s); %d train / %d test images, %d epochs; "
             "teacher %s: %d test errors", name, exp.alpha_k, exp.alpha_m_label, exp.temperature, exp.maps,
             s["relevance"], s["scaling"], len(train), len(test), epochs, tmeta["hidden"], teacher_errors)
    t_start = time.perf_counter()
    # the teacher is fixed: its logits (and target-class maps) are computed once for the training set
    cache = TeacherCache(teacher, train.x, train.y, s["relevance"], s["scaling"], dev,
                         maps=exp.uses_maps and exp.maps == "target", batch_size=int(s["eval_batch_size"]))

    def batches(rng: np.random.Generator):
        order = rng.permutation(len(train))
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def objective(model: nn.Module, idx: np.ndarray, epoch: int) -> Step:
        w = exp.weights(epoch - 1)
        x, y = train.x[torch.as_tensor(idx)].to(dev), torch.from_numpy(train.y[idx]).to(dev)
        t_logits = cache.logits[idx].to(dev)
        if w.mse:
            if cache.maps is not None:
                r_t = cache.maps[idx].to(dev)
            else:
                with torch.no_grad():
                    r_t = batch_maps(s["relevance"], s["scaling"], trace_mlp(teacher, x), y, exp.maps)
            s_trace = trace_mlp(model, x)
            r_s = batch_maps(s["relevance"], s["scaling"], s_trace, y, exp.maps)
            s_logits = s_trace.logits
        else:
            s_logits, r_s, r_t = model(x), None, None
        loss, parts = explanation_kd_loss(s_logits, t_logits, y, w, exp.temperature, r_s, r_t)
        n = len(y)
        # the per-term means are weighted by the batch size; teacher_correct is a count already
        sums = {k: v if k == "teacher_correct" else v * n for k, v in {"loss": float(loss.detach()), **parts}.items()}
        return Step(loss, n, sums)

    def report(stats: EpochStats) -> dict:
        w = exp.weights(stats.epoch - 1)
        pred, test_loss = predict(student, test, int(s["eval_batch_size"]), dev)
        row = {"epoch": stats.epoch, "alpha_k": w.kd, "alpha_ce": w.ce, "alpha_m": w.mse,
               **{f"train_{k}": v for k, v in stats.means.items() if k != "teacher_correct"},
               "test_errors": int((pred != test.y).sum()), "test_accuracy": float((pred == test.y).mean()),
               "test_loss": test_loss, "lr": stats.lr}
        if "teacher_correct" in stats.means:
            row["teacher_correct_fraction"] = stats.means["teacher_correct"]
        return row

    fitted = fit(student, objective, EpochData(batches, math.ceil(len(train) / bs)), fit_settings, report=report,
                 desc=name)
    history = fitted.history
    train_seconds = time.perf_counter() - t_start
    last = history[-1]
    metrics = {
        "experiment": name, "paper": exp.paper, "matches_paper_settings": exp.matches_paper(),
        "settings": {**asdict(exp), "alpha_m_label": exp.alpha_m_label},
        "errors": last["test_errors"], "accuracy": last["test_accuracy"], "n_test": len(test),
        "errors_per_10k": last["test_errors"] * PAPER_TEST_SIZE / len(test),
        "min_errors_over_epochs": min(h["test_errors"] for h in history),
        "published_errors": PUBLISHED_TABLE1[exp.paper]["misclassifications"] if exp.paper else None,
        "teacher_errors": teacher_errors, "teacher_hidden": tmeta["hidden"],
        "published_teacher_errors": PUBLISHED_TEACHER_ERRORS,
        "n_train": len(train), "epochs": epochs, "relevance": s["relevance"], "scaling": s["scaling"],
        "optimizer": s["optimizer"], "lr": s["lr"], "batch_size": bs, "schedule": s["schedule"],
        "student_hidden": list(s["student_hidden"]), "n_parameters": count_parameters(student),
        "seed": seed, "device": str(dev),
    }
    save_checkpoint(outputs["model"], "mlp", kwargs, student, {"classes": [str(i) for i in range(10)],
                                                               "dataset": "mnist", "distill": metrics})
    with atomic_path(outputs["history"]) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False, float_format="%.6g")
    write_json(outputs["metrics"], metrics)
    if outputs.get("timing"):
        # train_seconds includes the teacher cache; epoch_seconds are the kernel's (training + test evaluation)
        write_json(outputs["timing"], {"train_seconds": round(train_seconds, 1),
                                       "epoch_seconds": fitted.epoch_seconds, "device": str(dev)})
    log.info("%s: %d test errors of %d (published %s) in %.0fs", name, metrics["errors"], len(test),
             metrics["published_errors"], train_seconds)
    return metrics


# --- Table 1 -----------------------------------------------------------------------------------------
def _scale_note(m: Mapping[str, Any]) -> str:
    parts = [f"{m['epochs']} epochs on {m['n_train']:,} training images"]
    if m["n_test"] != PAPER_TEST_SIZE:
        parts.append(f"{m['n_test']:,} test images (errors scaled to 10,000)")
    if m.get("relevance") != "rap":
        parts.append(f"{m['relevance']} maps instead of RAP")
    return "; ".join(parts)


def _ce_label(st: Mapping[str, Any]) -> str:
    """The CE weight ``1 - alpha_k - alpha_m`` as text (a formula in ``i`` for the variational run)."""
    if not st["schedule"]:
        return f"{1 - st['alpha_k'] - st['alpha_m']:.4g}"
    start, scale, decay = st["schedule"]
    const = 1 - st["alpha_k"] - start
    return (f"{const:.4g} + " if abs(const) > 1e-12 else "") + f"{scale:g}*{decay:g}^i"


def build_table(metric_paths: list[str], history_paths: list[str], out_csv: str, out_md: str,
                out_png: str) -> pd.DataFrame:
    """Table 1 (ours beside the published misclassifications) and the test-error-per-epoch figure."""
    rows = []
    if not metric_paths:
        raise XaipipeError("distill_mnist table: no experiment results given")
    order = {name: i for i, name in enumerate(PUBLISHED_TABLE1)}  # Table 1's rows first, in its order
    pairs = sorted(zip((read_json(p) for p in metric_paths), history_paths),
                   key=lambda mh: (order.get(mh[0]["experiment"], len(order)), mh[0]["experiment"]))
    metrics = [m for m, _ in pairs]
    history_paths = [h for _, h in pairs]
    first = metrics[0]
    rows.append({"experiment": "teacher", "alpha_k": None, "alpha_ce": None, "alpha_m": None, "T": None,
                 "maps": None, "errors": first["teacher_errors"], "n_test": first["n_test"],
                 "errors_per_10k": round(first["teacher_errors"] * PAPER_TEST_SIZE / first["n_test"], 1),
                 "published": PUBLISHED_TEACHER_ERRORS,
                 "difference": round(first["teacher_errors"] * PAPER_TEST_SIZE / first["n_test"]
                                     - PUBLISHED_TEACHER_ERRORS, 1),
                 "note": f"pipeline teacher MLP {first['teacher_hidden']}"})
    for m in metrics:
        st = m["settings"]
        pub = m["published_errors"]
        note = _scale_note(m)
        if m["paper"] and not m["matches_paper_settings"]:
            note += f"; settings differ from Table 1 {m['paper']}"
        if m["paper"] is None:
            note += "; not in Table 1"
        if st["maps"] == "all":
            note += "; MSE over the maps of all 10 classes (section 9)"
        if st.get("seed") is not None:
            note += f"; seed {st['seed']}"
        rows.append({
            "experiment": m["experiment"], "alpha_k": st["alpha_k"],
            "alpha_ce": _ce_label(st),
            "alpha_m": st["alpha_m_label"], "T": st["temperature"], "maps": st["maps"],
            "errors": m["errors"], "n_test": m["n_test"], "errors_per_10k": round(m["errors_per_10k"], 1),
            "published": pub, "difference": None if pub is None else round(m["errors_per_10k"] - pub, 1),
            "note": note,
        })
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out_md) as tmp:
        tmp.write_text(df.astype(object).where(df.notna(), None).to_markdown(index=False, missingval="") + "\n")
    plot_errors(history_paths, [m["experiment"] for m in metrics], out_png, first["n_test"])
    return df


def plot_errors(history_paths: list[str], names: list[str], path: str, n_test: int) -> None:
    """Test misclassifications per epoch, one line per experiment (log scale: Ex-6 is near chance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for p, name in zip(history_paths, names):
        h = pd.read_csv(p)
        ax.plot(h["epoch"], h["test_errors"], "o-", ms=3, label=name)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test misclassifications (of {n_test:,})")
    ax.set_title("MNIST student, explanation-guided distillation (Table 1)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
