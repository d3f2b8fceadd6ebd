"""The one optimiser factory and learning-rate schedule (xaipipe.optim), against reference
implementations of the per-study versions it replaced (same values at every step)."""

from __future__ import annotations

import math

import pytest
import torch

from xaipipe.errors import ConfigError
from xaipipe.optim import lr_lambda, make_optimizer


def reference_text(total_steps, warmup_steps, schedule):
    """train.lr_lambda before the merge (text models, MNIST distillation, Places)."""
    def f(step):
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def reference_xdistill(schedule, total, warm, milestones, gamma):
    """xdistill.train.lr_factor before the merge."""
    def f(t):
        if warm and t < warm:
            return (t + 1) / warm
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (t - warm) / max(1, total - warm))))
        if schedule == "step":
            return gamma ** sum(t >= m for m in milestones)
        return 1.0
    return f


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
@pytest.mark.parametrize("total,warmup", [(1, 0), (12, 0), (12, 2), (100, 7), (5, 5)])
def test_schedule_equals_both_former_versions(schedule, total, warmup):
    new = lr_lambda(total, warmup, schedule)
    old_text, old_x = reference_text(total, warmup, schedule), reference_xdistill(schedule, total, warmup, [], 0.1)
    for t in range(total + 3):
        assert new(t) == old_text(t) == old_x(t), (schedule, total, warmup, t)


def test_step_schedule_equals_the_former_xdistill_version():
    new, old = lr_lambda(40, 3, "step", [10, 25], 0.5), reference_xdistill("step", 40, 3, [10, 25], 0.5)
    assert [new(t) for t in range(45)] == [old(t) for t in range(45)]
    assert new(9) == 1.0 and new(10) == 0.5 and new(30) == 0.25


def test_unknown_schedule_is_refused():
    with pytest.raises(ConfigError, match="unknown schedule 'linear'"):
        lr_lambda(10, 0, "linear")


def test_optimizers_are_built_as_asked():
    p = [torch.nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer(p, "sgd", 0.1, 5e-4, momentum=0.8, nesterov=True)
    assert isinstance(sgd, torch.optim.SGD)
    g = sgd.param_groups[0]
    assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) == (0.1, 0.8, True, 5e-4)
    assert make_optimizer(p, "sgd", 0.1).param_groups[0]["nesterov"] is False
    assert type(make_optimizer(p, "adamw", 1e-3, 0.01)) is torch.optim.AdamW
    adam = make_optimizer(p, "adam", "0.002", "0")  # YAML may hand strings such as 1e-3 over
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["lr"] == 0.002


def test_an_optimizer_a_study_does_not_offer_is_one_line_naming_the_study():
    p = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(ConfigError, match=r"^xnet training: unknown optimizer 'adamw': use sgd, adam$"):
        make_optimizer(p, "adamw", 0.1, allowed=("sgd", "adam"), where="xnet training")
    with pytest.raises(ConfigError, match="unknown optimizer 'lbfgs'"):
        make_optimizer(p, "lbfgs", 0.1)
