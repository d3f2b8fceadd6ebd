"""Reconstruction terms."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from . import LossInputs, register_term


@register_term("l1")
def l1(inputs: LossInputs) -> torch.Tensor:
    """Mean absolute error of ``extra["outputs"]`` against ``extra["targets"]`` (XDistillation's CAE, Eq. 4)."""
    return F.l1_loss(inputs.need("outputs", "l1"), inputs.need("targets", "l1"))
