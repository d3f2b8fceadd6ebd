"""The one training kernel: every study of the pipeline trains through :func:`fit`.

A study says only what is its own:

* the **objective** -- ``objective(model, batch, epoch) -> Step``: the loss of one mini-batch to
  minimise, plus the per-sample sums it wants averaged over the epoch (``Step.sums``) and the batch's
  weight ``Step.n`` (its number of samples, or the total sample weight);
* the **data** -- :class:`EpochData`: ``batches(rng)`` yields one epoch's mini-batches (drawing any
  shuffling from the kernel's seeded generator) and ``steps`` says how many there are;
* the **row** of the history -- ``report(stats) -> dict``: evaluates the model after an epoch and lays
  out the study's own columns (default: ``epoch``, ``train_<sum>`` means, ``lr``);
* the **settings** -- :class:`Settings`: optimiser, learning-rate schedule, epochs, gradient clipping,
  which history column selects the best epoch, patience.

The kernel owns the rest, once: the optimiser and schedule (from :mod:`xaipipe.optim`), the update
(:func:`optimizer_step`), train mode, the progress bar and log line of every epoch, the epoch's wall time
(kept out of the history, which is deterministic; the studies write it to ``timing.json``), a non-finite
training loss stopping the job, best-epoch selection with early stopping and the best weights restored,
and a resume checkpoint after every epoch (model, optimiser, scheduler, random generators, history;
tensors and plain data only, read with the safe loader) from which an interrupted run continues to
exactly the result of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import UnsafeFileError, check_finite
from .io import load_torch, one_line, save_torch
from .optim import OPTIMIZERS, lr_lambda, make_optimizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """How to train: everything the kernel needs besides the model, the objective and the data.

    ``schedule`` is one of :data:`xaipipe.optim.SCHEDULES`, stepped after every optimiser step
    (``milestones`` are in epochs); ``lr_step_epochs > 0`` instead multiplies the learning rate by
    ``gamma`` every that many epochs (stepped once per epoch). ``select`` names the history columns that
    score an epoch (the first one present and finite is used; ``mode`` ``max`` or ``min``); ``None``
    keeps the last epoch and never stops early. ``patience`` epochs without a better score stop
    training, but not before epoch ``patience_from``."""

    epochs: int
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    optimizers: tuple[str, ...] = OPTIMIZERS
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    lr_step_epochs: int = 0
    grad_clip: float | None = None
    select: tuple[str, ...] | None = None
    mode: str = "max"
    patience: int = 0
    patience_from: int = 0
    seed: int = 0
    where: str = "training"

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"Settings.mode must be max or min, not {self.mode!r}")
        if isinstance(self.select, str):
            object.__setattr__(self, "select", (self.select,))


@dataclass
class Step:
    """What the objective returns for one mini-batch: the ``loss`` to minimise, the batch's weight ``n``
    and ``sums`` (name -> a float or a 0-d tensor summed over the batch's samples; the kernel adds them up
    over the epoch, on the device for tensors, and divides by the summed ``n``)."""

    loss: torch.Tensor
    n: float
    sums: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class EpochData:
    """One epoch's mini-batches: ``batches(rng)`` (``rng`` is the kernel's seeded NumPy generator; draw
    every shuffle from it and a resumed run repeats the same batches) and their number ``steps``."""

    batches: Callable[[np.random.Generator], Iterable]
    steps: int


@dataclass
class EpochStats:
    """Handed to ``report`` after every epoch: the 1-based ``epoch``, the per-sample ``means`` of the
    objective's sums, their total weight ``seen`` and the learning rate ``lr`` at the end of the epoch."""

    epoch: int
    means: dict[str, float]
    seen: float
    lr: float


@dataclass
class Fitted:
    """The result of :func:`fit`: one history row per epoch, the selected epoch (1-based; the last one
    without ``select``), the wall time of every epoch in seconds and whether training stopped early."""

    history: list[dict]
    best_epoch: int
    epoch_seconds: list[float]
    stopped_early: bool = False


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, sched=None, params=None,
                   grad_clip: float | None = None) -> None:
    """One update: clear the gradients, backpropagate ``loss``, clip the gradient norm of ``params`` to
    ``grad_clip`` (when given), step the optimiser and the scheduler (when given)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(params, float(grad_clip))
    opt.step()
    if sched is not None:
        sched.step()


def make_schedule(opt: torch.optim.Optimizer, settings: Settings, steps_per_epoch: int):
    """The learning-rate scheduler of ``settings`` and whether it steps once per epoch (``True``) or
    after every optimiser step."""
    if settings.lr_step_epochs > 0:
        return torch.optim.lr_scheduler.StepLR(opt, step_size=int(settings.lr_step_epochs),
                                               gamma=float(settings.gamma)), True
    total = steps_per_epoch * int(settings.epochs)
    warmup = int(float(settings.warmup_epochs) * steps_per_epoch)
    milestones = [int(m) * steps_per_epoch for m in settings.milestones]
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(total, warmup, settings.schedule, milestones, float(settings.gamma))), False


def divergence_message(settings: Settings, advice: str | None = None) -> str:
    """What a non-finite loss says: training diverged, and ``advice`` (default: lower ``lr`` or set
    ``grad_clip``); a study's ``report`` uses it for its validation loss too."""
    advice = advice or (f"lower lr (now {float(settings.lr):g}) or set grad_clip, and check the data; no "
                        f"checkpoint of this epoch was written")
    return f"Training diverged or its inputs are not finite: {advice}"


def default_report(stats: EpochStats) -> dict:
    return {"epoch": stats.epoch, **{f"train_{k}": v for k, v in stats.means.items()}, "lr": stats.lr}


def _log_row(desc: str, row: Mapping[str, Any], seconds: float) -> None:
    parts = []
    for k, v in row.items():
        if k == "epoch":
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    log.info("%s epoch %s: %s (%.1fs)", desc, row.get("epoch"), " ".join(parts), seconds)


def _score(row: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for k in keys:
        v = row.get(k)
        if v is not None and math.isfinite(float(v)):
            return float(v)
    return None


def _load_resume(path: Path | None, fingerprint: str) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        state = load_torch(path)
    except UnsafeFileError as exc:  # never unpickled: it is overwritten after the first epoch
        log.warning("ignoring resume checkpoint: %s; training from the start", exc)
        return None
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is restarted from scratch
        log.warning("ignoring unreadable resume checkpoint %s (%s); training from the start", path, one_line(exc))
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log.warning("ignoring resume checkpoint %s: it was written for another configuration or data; "
                    "training from the start", path)
        return None
    return state


def fit(model: nn.Module, objective: Callable[[nn.Module, Any, int], Step], data: EpochData, settings: Settings,
        *, report: Callable[[EpochStats], dict] = default_report, desc: str | Callable[[int], str] = "train",
        params: Sequence[torch.nn.Parameter] | None = None, train_modules: Sequence[nn.Module] = (),
        on_epoch_start: Callable[[int], None] | None = None, resume: str | Path | None = None,
        fingerprint: str = "", diverged: str | None = None) -> Fitted:
    """Train ``model`` in place: ``settings.epochs`` epochs of ``data`` minimising ``objective``; returns
    the :class:`Fitted` history. ``params`` (default: the model's trainable parameters) are optimised;
    ``train_modules`` are put in train mode beside the model at the start of every epoch, after
    ``on_epoch_start(epoch)``. ``report`` builds each epoch's history row (and may evaluate the model).

    With ``resume`` (a file path) the training state is written there after every epoch but the last,
    and a checkpoint with the same ``fingerprint`` is continued from. ``diverged`` is the advice given
    when the epoch's mean loss is not finite."""
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    epochs = int(settings.epochs)
    opt = make_optimizer(params, settings.optimizer, settings.lr, settings.weight_decay, momentum=settings.momentum,
                         nesterov=settings.nesterov, allowed=settings.optimizers, where=settings.where)
    sched, per_epoch = make_schedule(opt, settings, max(1, int(data.steps)))
    step_sched = None if per_epoch else sched
    rng = np.random.default_rng(settings.seed)
    better = (lambda a, b: a > b) if settings.mode == "max" else (lambda a, b: a < b)
    history: list[dict] = []
    epoch_seconds: list[float] = []
    best: tuple[float, int] = (-math.inf if settings.mode == "max" else math.inf, 0)
    best_state = None
    bad = 0
    start = 1
    stopped = False
    resume = Path(resume) if resume is not None else None
    label = desc if callable(desc) else (lambda e: f"{desc} epoch {e}/{epochs}")
    name = desc(0).split(" epoch")[0] if callable(desc) else desc
    state = _load_resume(resume, fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        history, best, best_state, bad = state["history"], tuple(state["best"]), state["best_state"], state["bad"]
        epoch_seconds.extend(state["epoch_seconds"])
        start = state["epoch"] + 1
        log.info("%s: resuming from %s after epoch %d of %d", name, resume, state["epoch"], epochs)
        if state.get("stopped"):
            start, stopped = epochs + 1, True  # it had already stopped early
    message = divergence_message(settings, diverged)
    for epoch in range(start, epochs + 1):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        model.train()
        for m in train_modules:
            m.train()
        t0 = time.perf_counter()
        sums: dict[str, Any] = {}
        seen: Any = 0
        for batch in tqdm(data.batches(rng), total=data.steps, desc=label(epoch), leave=False, mininterval=2.0):
            step = objective(model, batch, epoch)
            optimizer_step(step.loss, opt, step_sched, params, settings.grad_clip)
            seen = seen + step.n
            for k, v in step.sums.items():
                sums[k] = sums[k] + v if k in sums else v
        seen = float(seen)
        means = {k: float(v) / seen if seen else float("nan") for k, v in sums.items()}
        if "loss" in means:
            check_finite(means["loss"], f"the training loss of {name} in epoch {epoch}",
                         message)
        lr = opt.param_groups[0]["lr"]
        if per_epoch:
            sched.step()
        row = report(EpochStats(epoch, means, seen, lr))
        history.append(row)
        epoch_seconds.append(round(time.perf_counter() - t0, 2))
        _log_row(name, row, epoch_seconds[-1])
        stop = False
        if settings.select:
            score = _score(row, settings.select)
            if score is not None and better(score, best[0]):
                best = (score, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                bad = 0
            else:
                bad += 1
                stop = bool(settings.patience and bad >= settings.patience and epoch >= settings.patience_from)
        if resume is not None and epoch < epochs:
            save_torch({"fingerprint": fingerprint, "epoch": epoch, "stopped": stop,
                        "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "numpy_rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                        "history": history, "best": list(best), "best_state": best_state, "bad": bad,
                        "epoch_seconds": epoch_seconds}, resume)
        if stop:
            log.info("%s: early stop after epoch %d (best %d, %s %.4f)", name, epoch, best[1],
                     settings.select[0], best[0])
            stopped = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    best_epoch = best[1] if settings.select else len(history)
    return Fitted(history, best_epoch, epoch_seconds, stopped)


__all__ = ["EpochData", "EpochStats", "Fitted", "Settings", "Step", "default_report", "divergence_message", "fit",
           "make_schedule", "optimizer_step"]
