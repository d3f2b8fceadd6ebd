"""The drop-loss regulariser of XNet (David & Liu, 002_8ecab4f1e6369166.txt, section 2, Eqs. 1-2).

Notation of the paper: L the classification loss (cross-entropy), X a minibatch, X_j its images in
category j, θ the parameters, θ̂_j the parameters without neuron j (neuron j zeroed by the X-layer,
:class:`~xaipipe.xnet.models.XLayer`). The **drop-loss** of neuron j is L(θ̂_j, X_j): the mean
cross-entropy over the examples of category j when neuron j is dropped. Training minimises

    Eq. (1)  L(θ, X) - α Σ_j L(θ̂_j, X_j)          (``reduction: sum``; ``mean`` divides by the categories)
    Eq. (2)  L(θ, X) - α min_j L(θ̂_j, X_j)         (``reduction: min``, the paper's final choice)

Neuron ``assignment[j]`` is the one conditioned on category j (identity unless a matching,
:mod:`.matching`, chose otherwise). ``kind: increase`` uses L(θ̂_j, X_j) - L(θ, X_j), the loss *increase*
caused by the drop, instead of the paper's plain L(θ̂_j, X_j) (``kind: loss``, default).

Batched computation: :meth:`XNet.head_drop_each <xaipipe.xnet.models.XNet.head_drop_each>` gives the
logits of all k one-neuron drops at once, ``(k, B, C)``; the per-example losses ``E[i, b] =
CE(logits[i, b], y_b)`` are reduced to categories by one matrix product with the ``(B, n_cat)``
membership matrix A: ``sums[j, i] = Σ_b A[b, j] E[i, b]``. Categories may overlap (CelebA attributes)
or be empty in a minibatch; an empty category has no drop-loss in that batch and is left out of the
min / mean / sum (a batch with no category at all gives a zero term).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from ..losses import LossInputs, Objective, register_term
from ..errors import XaipipeError

KINDS = ("loss", "increase")


@dataclass
class DropLosses:
    """Category-by-neuron drop-loss sums of one batch (or of many, see :meth:`add`).

    ``sums[j, i]`` = Σ over examples of category j of the cross-entropy with neuron i dropped;
    ``full_sums[j]`` = the same without any drop; ``counts[j]`` = number of examples of category j."""

    sums: torch.Tensor
    full_sums: torch.Tensor
    counts: torch.Tensor

    @property
    def present(self) -> torch.Tensor:
        return self.counts > 0

    @property
    def matrix(self) -> torch.Tensor:
        """``M[j, i]`` = mean drop-loss of neuron i on category j (Algorithm 1's matrix; 0 where empty)."""
        return self.sums / self.counts.clamp_min(1).unsqueeze(1)

    @property
    def full(self) -> torch.Tensor:
        """``L(θ, X_j)``: mean loss of the undropped network per category (0 where empty)."""
        return self.full_sums / self.counts.clamp_min(1)

    def matched(self, assignment: torch.Tensor, kind: str = "loss") -> torch.Tensor:
        """Drop-loss of the neuron assigned to each category, ``d_j = M[j, assignment[j]]`` (``kind:
        increase``: minus ``L(θ, X_j)``)."""
        if kind not in KINDS:
            raise XaipipeError(f"unknown drop-loss kind {kind!r}; use one of {KINDS}")
        idx = torch.as_tensor(assignment, device=self.sums.device, dtype=torch.long)
        d = self.matrix.gather(1, idx.unsqueeze(1)).squeeze(1)
        return d - self.full if kind == "increase" else d

    def add(self, other: "DropLosses") -> "DropLosses":
        """Sum of two accumulations (detached; Algorithm 1 adds minibatch after minibatch)."""
        return DropLosses(self.sums + other.sums.detach(), self.full_sums + other.full_sums.detach(),
                          self.counts + other.counts)

    @staticmethod
    def zeros(n_categories: int, n_neurons: int, device: torch.device | str = "cpu") -> "DropLosses":
        return DropLosses(torch.zeros(n_categories, n_neurons, device=device),
                          torch.zeros(n_categories, device=device), torch.zeros(n_categories, device=device))


def example_drop_losses(head_drop_each: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor,
                        y: torch.Tensor) -> torch.Tensor:
    """``E[i, b]``: cross-entropy of example b with neuron i dropped, ``(k, B)``, from one batched
    forward of the head over the ``(k, B, k)`` dropped activations."""
    logits = head_drop_each(h)  # (k, B, C)
    k, b, c = logits.shape
    return F.cross_entropy(logits.reshape(k * b, c), y.repeat(k), reduction="none").view(k, b)


def drop_losses(head_drop_each: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, y: torch.Tensor,
                membership: torch.Tensor, full_losses: torch.Tensor) -> DropLosses:
    """Drop-loss sums of one batch.

    ``h`` ``(B, k)`` explainable activations, ``y`` ``(B,)`` labels, ``membership`` ``(B, n_cat)``
    (bool or 0/1: example b is in category j), ``full_losses`` ``(B,)`` the per-example cross-entropy of
    the undropped network (already computed for the classification loss)."""
    a = membership.to(h.dtype)
    e = example_drop_losses(head_drop_each, h, y)          # (k, B)
    return DropLosses(sums=a.t() @ e.t(), full_sums=a.t() @ full_losses, counts=a.sum(0))


def _reduce_min(d: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return d[present].min()


def _reduce_mean(d: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return d[present].mean()


def _reduce_sum(d: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return d[present].sum()


REDUCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "min": _reduce_min,    # Eq. (2)
    "mean": _reduce_mean,  # Eq. (1) divided by the number of categories present
    "sum": _reduce_sum,    # Eq. (1) as printed
}


def droploss_term(dl: DropLosses, assignment: torch.Tensor, reduction: str = "min",
                  kind: str = "loss") -> torch.Tensor:
    """The regulariser R = min_j d_j (Eq. 2), or mean/sum_j d_j (Eq. 1), over categories present.

    The training objective is ``L(θ, X) - α R`` (:func:`xnet_objective`)."""
    if reduction not in REDUCTIONS:
        raise XaipipeError(f"unknown drop-loss reduction {reduction!r}; use one of {sorted(REDUCTIONS)}")
    present = dl.present
    d = dl.matched(assignment, kind)
    if not bool(present.any()):
        return d.sum() * 0.0  # no category in this batch: no term (keeps the graph and the device)
    return REDUCTIONS[reduction](d, present)


@register_term("droploss")
def droploss(inputs: LossInputs, reduction: str = "min", kind: str = "loss") -> torch.Tensor:
    """The loss term of :func:`droploss_term`: reads the batch's drop-losses (``extra["drop_losses"]``) and
    the category -> neuron ``extra["assignment"]``."""
    return droploss_term(inputs.need("drop_losses", "droploss"), inputs.need("assignment", "droploss"), reduction,
                         kind)


def loss_terms(alpha: float, reduction: str = "min", kind: str = "loss") -> Objective:
    """XNet's objective ``L(θ, X) − α R`` from the registered terms (``ce`` alone for the baseline)."""
    if alpha > 0:
        return Objective([("ce", 1.0), ("droploss", -float(alpha), {"reduction": reduction, "kind": kind})])
    return Objective([("ce", 1.0)])


def xnet_objective(model, x: torch.Tensor, y: torch.Tensor, membership: torch.Tensor, alpha: float,
                   assignment: torch.Tensor, reduction: str = "min", kind: str = "loss",
                   terms: Objective | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, DropLosses, torch.Tensor]:
    """One minibatch of XNet training: ``L(θ, X) - α R`` (``terms``: :func:`loss_terms`, built once per run).

    Returns ``(objective, classification loss, R, drop-loss sums, logits)``. With ``alpha == 0`` (the
    baseline) the drop-losses are still computed, for the curves, but outside the autograd graph."""
    terms = terms or loss_terms(alpha, reduction, kind)
    h = model.hidden(x)
    logits = model.head(h)
    per_example = F.cross_entropy(logits, y, reduction="none")
    if alpha > 0:
        dl = drop_losses(model.head_drop_each, h, y, membership, per_example)
        total, parts = terms(LossInputs(logits=logits, labels=y, extra={"ce_rows": per_example, "drop_losses": dl,
                                                                        "assignment": assignment}))
        return total, parts["ce"], parts["droploss"], DropLosses(dl.sums.detach(), dl.full_sums.detach(),
                                                                 dl.counts), logits
    total, parts = terms(LossInputs(logits=logits, labels=y, extra={"ce_rows": per_example}))
    with torch.no_grad():
        dl = drop_losses(model.head_drop_each, h.detach(), y, membership, per_example.detach())
        reg = droploss_term(dl, assignment, reduction, kind)
    return total, parts["ce"], reg, dl, logits
