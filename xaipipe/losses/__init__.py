"""The one registry of loss terms: every training objective of the pipeline is a weighted sum of them.

A study builds its objective from named terms, in order, ``loss = Σ_i w_i · term_i(inputs, **params_i)``
(:class:`Objective`), and hands each mini-batch's model outputs as one :class:`LossInputs`. A term reads
what it needs from the inputs (labels, the teacher's logits, relevance maps, hint features, ...) and fails
with a message naming what is missing. Terms are looked up by name, so a config can combine any of them:

``ce``            cross-entropy with the labels (optional per-sample ``weights``, ``label_smoothing``)
``kd``            Hinton et al.'s ``T² · KL(p_teacher ‖ q_student)`` at ``temperature``
``softmax_mse``   squared error of the softmax against one-hot labels (LeNet's original loss)
``l1``            mean absolute error of ``outputs`` against ``targets`` (reconstruction, e.g. the CAE)

``droploss``      XNet's drop-loss regulariser R (Eq. 1/2; the objective ``CE − α R`` weights it ``−α``)
``at``, ``nst``, ``ab``  feature-hint transfers between paired student/teacher layers (XDistillation's baselines)
``weight_l2``     squared L2 norm of a weight tensor (XDistillation's fusion-layer penalty)
``map_mse``       MSE of the model's relevance maps against the teacher's, over the samples the teacher
                  gets right (explanation-guided distillation on MNIST, report section 7.3) Adding a
term = one module with a function decorated by ``@register_term("name")`` + one line in :data:`BUILTIN`;
modules are imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch

from ..errors import XaipipeError
from ..registry import registrar

#: name -> term ``fn(inputs: LossInputs, **params) -> scalar tensor``; filled as the modules are imported
TERMS: dict[str, Callable[..., torch.Tensor]] = {}

#: built-in term name -> module that registers it (imported on first use)
BUILTIN: dict[str, str] = {
    "ce": "xaipipe.losses.classification",
    "softmax_mse": "xaipipe.losses.classification",
    "kd": "xaipipe.losses.kd",
    "l1": "xaipipe.losses.reconstruction",
    "droploss": "xaipipe.xnet.droploss",
    "at": "xaipipe.distill.xdistill.transfer",
    "nst": "xaipipe.distill.xdistill.transfer",
    "ab": "xaipipe.distill.xdistill.transfer",
    "weight_l2": "xaipipe.distill.xdistill.transfer",
    "map_mse": "xaipipe.distill.mnist_kd",
}


@dataclass
class LossInputs:
    """One mini-batch's outputs, as the terms read them: the trained model's ``logits`` ``(B, C)``, the
    ``labels`` ``(B,)``, optional per-sample ``weights`` ``(B,)``, the teacher's logits, relevance maps of
    model and teacher, and study-specific tensors in ``extra`` (hint features, drop-losses, targets)."""

    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    teacher_maps: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def need(self, name: str, term: str) -> Any:
        """The input ``name`` (a field or a key of ``extra``); missing is an error naming ``term``."""
        value = getattr(self, name, None) if name in self.__dataclass_fields__ else self.extra.get(name)
        if value is None:
            raise XaipipeError(f"loss term {term!r} needs {name}, which this study does not provide")
        return value


#: ``@register_term("name")`` adds a loss term; a name taken is refused
register_term = registrar(TERMS, "loss term")


def terms() -> dict[str, Callable[..., torch.Tensor]]:
    """Every term: the built-ins (their modules imported now) and any registered by other code."""
    for name in BUILTIN:
        get_term(name)
    return TERMS


def get_term(name: str) -> Callable[..., torch.Tensor]:
    if name not in TERMS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    try:
        return TERMS[name]
    except KeyError:
        known = ", ".join(sorted(set(BUILTIN) | set(TERMS)))
        raise XaipipeError(f"unknown loss term {name!r}; known: {known}") from None


@dataclass(frozen=True)
class Component:
    """One weighted term of an objective; ``label`` names its value among the parts (default: ``name``)."""

    name: str
    weight: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None


class Objective:
    """``Σ_i w_i · term_i(inputs, **params_i)`` over its components, in their order (the first one's
    weight 1 is not multiplied in: a one-term objective is the term itself, bit for bit).

    ``components``: a mapping ``name -> weight`` or ``name -> {weight, **params}``, or a sequence of
    :class:`Component` / ``(name, weight[, params[, label]])``. Every term is looked up (and an unknown name
    refused) when the objective is built, before any training."""

    def __init__(self, components: Mapping[str, Any] | Iterable[Any]):
        self.components: list[Component] = []
        items = components.items() if isinstance(components, Mapping) else components
        for item in items:
            if isinstance(item, Component):
                comp = item
            elif isinstance(components, Mapping):
                name, spec = item
                if isinstance(spec, Mapping):
                    spec = dict(spec)
                    comp = Component(name, float(spec.pop("weight", 1.0)), spec)
                else:
                    comp = Component(name, float(spec))
            else:
                comp = Component(item[0], float(item[1]), dict(item[2]) if len(item) > 2 else {},
                                 item[3] if len(item) > 3 else None)
            get_term(comp.name)
            self.components.append(comp)
        if not self.components:
            raise XaipipeError("an objective needs at least one loss term")

    def __call__(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and every term's value (detached), by name."""
        total = None
        parts: dict[str, torch.Tensor] = {}
        for c in self.components:
            value = get_term(c.name)(inputs, **c.params)
            parts[c.label or c.name] = value.detach()
            weighted = value if c.weight == 1.0 and total is None else c.weight * value
            total = weighted if total is None else total + weighted
        return total, parts

    def __repr__(self) -> str:
        return " + ".join(f"{c.weight:g}·{c.name}" for c in self.components)


__all__ = ["BUILTIN", "Component", "LossInputs", "Objective", "TERMS", "get_term", "register_term", "terms"]
