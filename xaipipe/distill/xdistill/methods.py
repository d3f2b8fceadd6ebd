"""Student training methods compared in XDistillation Tables II-V: a registry (:data:`METHODS`) whose
entries the config names (``xdistill.<dataset>.methods.<variant>.method``). A new method is one class
decorated with ``@register_method("name")``.

All objectives are sums of the same registered loss terms (:mod:`xaipipe.losses`; ``y`` labels,
``z_s``/``z_t`` student/teacher logits), built by :meth:`StudentMethod.objective`:

* ``ce``: ``CE(z_s, y)`` — always;
* ``kd``: ``(1 - alpha) · KD_tau(z_s, z_t)`` — Hinton's term in the form of the paper's Eq. 6
  (``alpha = 0.9``, ``tau = 1``); ``alpha = 1`` switches it off;
* ``at`` / ``nst`` / ``ab``: ``beta · sum_layers transfer(S_l, T_l)`` (:mod:`.transfer`) on paired hint
  layers (the method's :attr:`~StudentMethod.transfer_term`);
* ``weight_l2``: ``lambda · ||c||_2^2`` — XDistillation's feature reduction ``F_R`` on the concatenation
  layer (Eq. 6).

| method | student | loss |
|---|---|---|
| ``baseline`` | plain CNN | CE |
| ``kd`` | plain CNN | CE + (1-alpha) KD |
| ``at`` | plain CNN | CE + beta AT (+ (1-alpha) KD if alpha < 1) |
| ``nst`` | plain CNN | CE + beta NST (+ KD) |
| ``ab`` | plain CNN | ``init_epochs`` of AB alone (the paper's initialisation), then CE + beta AB (+ KD); beta 0 |
| ``xdistill`` | :class:`~.models.FusedStudent` (frozen CAE + CNN) | CE + (1-alpha) KD + lambda ||c||^2 |

**What ``c`` is.** Eq. 6 names ``c`` "the weight of the last layer of the concatenation part", and
section III says the feature reduction constrains "the signal outputs from CNN ... to allow more
explainability freedom from the explainable fusion part"; so by default (``penalty_on: cnn``) ``c`` is
the block of the concatenation layer's weight that multiplies the CNN features. ``penalty_on: all`` takes
the whole weight (CAE columns included), ``cae`` only the CAE columns.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import XaipipeError
from ...losses import LossInputs, Objective
from ...registry import registrar
from .transfer import Connector, pair_layers

METHODS: dict[str, type["StudentMethod"]] = {}


register_method = registrar(METHODS, "student method", set_name=True)


# keys of a method's config entry that are not loss parameters
COMMON_KEYS = {"method", "arch", "arch_kwargs"}


class StudentMethod:
    """One way of training a student. ``params`` are validated against :attr:`defaults`."""

    name = "?"
    defaults: dict[str, Any] = {}
    needs_cae = False
    fused = False

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise XaipipeError(f"student method {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                               f"known: {known}")
        self.params = {**self.defaults, **params}
        alpha = float(self.params.get("alpha", 1.0))
        if not 0.0 <= alpha <= 1.0:
            raise XaipipeError(f"student method {self.name!r}: alpha must be in [0, 1], got {alpha}")
        self.connectors = nn.ModuleList()
        self.pairs: list[tuple[int, int]] = []

    # --- set-up ---------------------------------------------------------------------------------------
    def setup(self, student: nn.Module, teacher: nn.Module, example: torch.Tensor) -> None:
        """Prepare per-run modules (hint pairs, connectors) from one example batch."""

    @property
    def init_epochs(self) -> int:
        return int(self.params.get("init_epochs", 0))

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.connectors.parameters())

    @property
    def uses_teacher(self) -> bool:
        return self.kd_weight > 0 or bool(self.pairs)

    @property
    def kd_weight(self) -> float:
        return 1.0 - float(self.params.get("alpha", 1.0))

    # --- objective ------------------------------------------------------------------------------------
    #: the registered hint-transfer term of the method (``at``, ``nst``, ``ab``), or None
    transfer_term: str | None = None

    def transfer_params(self) -> dict[str, Any]:
        """Parameters of :attr:`transfer_term`."""
        return {}

    def penalty_weight(self, student: nn.Module) -> torch.Tensor | None:
        """The weight the ``weight_l2`` penalty applies to (None: no penalty)."""
        return None

    def objective(self, phase: str = "main") -> Objective:
        """The method's objective from the registered loss terms, labelled as the history names them:
        ``ce`` + ``(1 - alpha) kd`` + ``beta transfer`` + ``lambda penalty`` (``phase="init"``: the transfer
        term alone)."""
        transfer = (self.transfer_term, 1.0, self.transfer_params(), "transfer")
        if phase == "init":
            if self.transfer_term is None:
                raise XaipipeError(f"student method {self.name!r} has no transfer term for init_epochs")
            return Objective([transfer])
        terms: list[tuple] = [("ce", 1.0)]
        if self.kd_weight > 0:
            terms.append(("kd", self.kd_weight, {"temperature": float(self.params.get("temperature", 1.0))}))
        beta = float(self.params.get("beta", 0.0))
        if self.pairs and beta > 0 and self.transfer_term is not None:
            terms.append((self.transfer_term, beta, self.transfer_params(), "transfer"))
        if self.params.get("lam") is not None and float(self.params["lam"]) != 0:
            terms.append(("weight_l2", float(self.params["lam"]), {}, "penalty"))
        return Objective(terms)

    def loss(self, student: nn.Module, teacher: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
             phase: str = "main", objective: Objective | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """``(loss, student logits, {term: value})`` of one batch (``objective``: :meth:`objective` of the
        phase, built once per run). ``phase="init"``: the transfer term alone."""
        objective = objective or self.objective(phase)
        feats, hs = student.forward_features(x)
        logits = student.head(feats)
        zt = ht = None
        if teacher is None and (self.uses_teacher or phase == "init"):
            raise XaipipeError(f"student method {self.name!r} needs the teacher's outputs; none was given")
        if teacher is not None and (self.uses_teacher or phase == "init"):
            with torch.no_grad():
                ft, ht = teacher.forward_features(x)
                zt = teacher.head(ft)
        extra: dict[str, Any] = {"hints": (hs, ht, self.pairs), "connectors": self.connectors}
        weight = self.penalty_weight(student)
        if weight is not None:
            extra["weight"] = weight
        total, parts = objective(LossInputs(logits=logits, labels=y, teacher_logits=zt, extra=extra))
        return total, logits, {k: float(v) for k, v in parts.items()}


@register_method("baseline")
class Baseline(StudentMethod):
    """The student trained on labels alone."""

    defaults: dict[str, Any] = {}


@register_method("kd")
class KD(StudentMethod):
    """Hinton et al. (2015) knowledge distillation, weighted as in the paper's Eq. 6."""

    defaults = {"alpha": 0.9, "temperature": 1.0}


class _HintMethod(StudentMethod):
    def setup(self, student: nn.Module, teacher: nn.Module, example: torch.Tensor) -> None:
        self.pairs = pair_layers(len(student.hint_channels), len(teacher.hint_channels), self.params["layers"])


@register_method("at")
class AT(_HintMethod):
    """Attention transfer on the paired hint layers (post-ReLU maps by default)."""

    defaults = {"beta": 1000.0, "p": 2.0, "layers": None, "relu": True, "alpha": 1.0, "temperature": 1.0}

    transfer_term = "at"

    def transfer_params(self):
        return {"p": float(self.params["p"]), "relu": bool(self.params["relu"])}


@register_method("nst")
class NST(_HintMethod):
    """Neuron selectivity transfer (polynomial-kernel MMD) on the paired hint layers."""

    defaults = {"beta": 50.0, "layers": None, "relu": True, "alpha": 1.0, "temperature": 1.0}

    transfer_term = "nst"

    def transfer_params(self):
        return {"relu": bool(self.params["relu"])}


@register_method("ab")
class AB(_HintMethod):
    """Activation-boundary transfer: ``init_epochs`` of AB alone, then CE (+ beta AB, + KD)."""

    defaults = {"beta": 0.0, "margin": 1.0, "init_epochs": 1, "layers": None, "alpha": 1.0,
                "temperature": 1.0}

    def setup(self, student, teacher, example):
        super().setup(student, teacher, example)
        with torch.no_grad():
            was_s, was_t = student.training, teacher.training
            student.eval(), teacher.eval()
            _, hs = student.forward_features(example[:2])
            _, ht = teacher.forward_features(example[:2])
            student.train(was_s), teacher.train(was_t)
        self.connectors = nn.ModuleList(
            Connector(hs[i].shape[1], ht[j].shape[1], dims=max(0, hs[i].dim() - 2)) for i, j in self.pairs)
        self.connectors.to(example.device)

    transfer_term = "ab"

    def transfer_params(self):
        return {"margin": float(self.params["margin"])}


@register_method("xdistill")
class XDistillation(StudentMethod):
    """XDistillation (Eq. 6): frozen CAE features fused with the CNN's; CE + (1-alpha) KD + lambda ||c||^2."""

    defaults = {"alpha": 0.9, "temperature": 1.0, "lam": 5e-4, "penalty_on": "cnn", "cae_features": "output"}
    needs_cae = True
    fused = True

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["penalty_on"] not in ("cnn", "cae", "all"):
            raise XaipipeError(f"xdistill: penalty_on must be cnn, cae or all, got {self.params['penalty_on']!r}")
        if self.params["cae_features"] not in ("output", "latent"):
            raise XaipipeError(f"xdistill: cae_features must be output or latent, got {self.params['cae_features']!r}")

    def penalty_weight(self, student):
        return student.concat_weight(self.params["penalty_on"])


def get_method(cfg: dict) -> StudentMethod:
    """The method of one config entry ``{method: name, arch?, arch_kwargs?, **params}``."""
    name = cfg.get("method")
    if name not in METHODS:
        raise XaipipeError(f"unknown student method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](**{k: v for k, v in cfg.items() if k not in COMMON_KEYS})


__all__ = ["METHODS", "StudentMethod", "get_method", "register_method"]
