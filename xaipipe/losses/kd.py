"""Knowledge distillation (Hinton, Vinyals and Dean 2015; report section 7; XDistillation section III):
with temperature ``T``, ``p = softmax(z_t / T)`` (teacher) and ``q = softmax(z_s / T)`` (student),

    KD(z_s, z_t) = T^2 · KL(p || q) = T^2 · Σ_i p_i (log p_i - log q_i),

averaged over the batch. The ``T^2`` factor keeps the gradient scale independent of ``T``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..errors import XaipipeError
from . import LossInputs, register_term


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
            reduction: str = "mean") -> torch.Tensor:
    """``T^2 · KL(p_teacher || q_student)`` per sample, reduced by ``mean`` (over the batch), ``sum`` or
    ``none``. The teacher's logits are detached (the teacher is not trained by this term)."""
    if temperature <= 0:
        raise XaipipeError(f"kd_loss: temperature must be > 0, got {temperature}")
    t = float(temperature)
    log_q = F.log_softmax(student_logits / t, dim=1)
    log_p = F.log_softmax(teacher_logits.detach() / t, dim=1)
    per_sample = (log_p.exp() * (log_p - log_q)).sum(1) * t * t
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise XaipipeError(f"kd_loss: unknown reduction {reduction!r}; use mean, sum or none")


@register_term("kd")
def kd(inputs: LossInputs, temperature: float = 1.0) -> torch.Tensor:
    """:func:`kd_loss` of ``logits`` against ``teacher_logits``, the batch mean."""
    return kd_loss(inputs.need("logits", "kd"), inputs.need("teacher_logits", "kd"), float(temperature))
