"""Optimisers and learning-rate schedules: the one factory every training loop of the pipeline uses
(text models, MNIST distillation, explanation feedback, Places, XDistillation, XNet).

``make_optimizer(params, name, lr, ...)`` builds ``adamw``, ``adam`` or ``sgd`` (momentum, optionally
Nesterov: each study keeps the variant its source uses); ``lr_lambda(total, warmup, schedule)`` is the
multiplier of the base learning rate at an optimiser step (linear warm-up, then ``constant``, ``cosine``
or ``step``), for :class:`torch.optim.lr_scheduler.LambdaLR`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch

from .errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "step")


def make_optimizer(params: Iterable, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                   nesterov: bool = False, allowed: Sequence[str] = OPTIMIZERS,
                   where: str = "optimizer") -> torch.optim.Optimizer:
    """``name`` (one of ``allowed``) over ``params``; an unknown name is a :class:`ConfigError` naming
    ``where`` and the choices. ``momentum`` and ``nesterov`` apply to SGD only."""
    if name not in allowed or name not in OPTIMIZERS:
        raise ConfigError(f"{where}: unknown optimizer {name!r}: use {', '.join(allowed)}")
    lr, weight_decay = float(lr), float(weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=float(momentum), weight_decay=weight_decay, nesterov=nesterov)


def lr_lambda(total_steps: int, warmup_steps: int, schedule: str, milestones: Sequence[int] = (),
              gamma: float = 0.1) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimiser step ``t``: ``(t + 1) / warmup_steps`` during
    the warm-up, then 1 (``constant``), a half cosine to 0 at ``total_steps`` (``cosine``) or ``gamma``
    to the power of the ``milestones`` (in steps) passed (``step``)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}: use {', '.join(SCHEDULES)}")
    milestones = [int(m) for m in milestones]

    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "cosine":
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if schedule == "step":
            return gamma ** sum(step >= m for m in milestones)
        return 1.0
    return f


__all__ = ["OPTIMIZERS", "SCHEDULES", "lr_lambda", "make_optimizer"]
