"""Layer-wise relevance propagation and deep Taylor decomposition with Zennit: the LRP / deep Taylor maps
that the report compares with (sections 4, 5, 6.3) and uses to pick relevant words (sections 7-8).
Rules: Chormai (2018), "Designing Recurrent Neural Networks for Explainability" (the companion thesis),
sections 3.2.3 (LRP, alpha-beta eq. 3.3) and 3.3 (deep Taylor), Table 3.1 (w^2, z+, z^beta).

Relevance starts at the target logit (output gradient ``one_hot(t) * f_t(x)``, so ``R_out = f_t(x)``)
and is propagated layer by layer with ``R_j = sum_k q_jk / (sum_j q_jk) R_k`` (thesis eq. 3.1), where
the rule fixes the contributions ``q_jk`` of input ``j`` to output ``k`` (``a_j`` input, ``w_jk`` weight,
``w^+ = max(0, w)``, ``w^- = min(0, w)``):

* ``lrp_epsilon``: epsilon rule everywhere, ``q_jk = a_j w_jk``, denominator ``z_k + b_k + eps sign``
  (``z_k = sum_j a_j w_jk``).
* ``lrp_zplus``: z+ rule (= alpha1-beta0) on the conv and all Linear layers, ``q_jk = (a_j w_jk)^+``.
* ``lrp_alpha2beta1``: alpha-beta rule (eq. 3.3) with ``alpha = 2, beta = 1`` on the conv and all Linear
  layers.
* ``lrp_w2`` (deep Taylor): w^2 rule ``q_jk = w_jk^2`` on the input conv layer (real-valued inputs,
  Table 3.1), z+ above.
* ``lrp_zbox`` (deep Taylor): z^beta rule ``q_jk = a_j w_jk - l_j w_jk^+ - h_j w_jk^-`` on the input conv
  layer (inputs in a box ``l <= a <= h``), z+ above.

Network pieces without a rule pass relevance on as the gradient does: ReLU (relevance of an inactive
unit is already zero), Dropout (identity in eval mode) and the max over time, which routes each pooled
channel's relevance to the window that won the max (winner-take-all; ``amax`` splits it equally among
exactly tied windows, e.g. a repeated n-gram). Relevance of a word = sum over its embedding dimensions.

Notes on the rules (Zennit 0.5 conventions, checked against matrix-form references in the tests):

* z+ and alpha-beta allow negative inputs (embeddings): "positive contributions" are ``a^+ w^+`` and
  ``a^- w^-``. A positive bias ``b^+`` is part of the z+ denominator and absorbs the share
  ``R_k b_k^+ / (z_k^+ + b_k^+)``; epsilon absorbs ``R_k (b_k + eps sign) / (z_k + b_k + eps sign)``.
  With biases ``<= 0`` (the deep Taylor assumption of eq. 3.9) z+ conserves relevance exactly.
* z^beta: Table 3.1 prints ``a_j w_jk - l_j w_jk^- - h_j w_jk^+``; the derivation above it (root point
  ``l_j 1{w_jk >= 0} + h_j 1{w_jk <= 0}``, eq. 3.23-3.24) and Montavon et al. (2017) give
  ``a_j w_jk - l_j w_jk^+ - h_j w_jk^-``, which is what Zennit's ``ZBox`` (and this module) uses.
  Every term is ``>= 0`` for ``l <= a <= h``; the bias cancels, so the layer is conservative.
  Default box: per-dimension min / max of the embedding matrix (row 0, the zero vector, makes
  ``l <= 0 <= h``), or the ``low`` / ``high`` parameters (scalars or ``E`` values).
* w^2 and z^beta do not scale with the input, so the zero padding of documents shorter than the kernel
  would receive relevance. Here the padding is no input: w^2 sums ``w_jk^2`` over the real words only
  (input modifier = word indicator instead of ones; bias not in the denominator, as in Table 3.1) and
  the box of a padding position is ``[0, 0]``. Padding thus receives exactly zero relevance and
  a batch gives the per-document result.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from zennit.core import BasicHook, Composite, Hook, ParamMod, Stabilizer
from zennit.composites import NameMapComposite
from zennit.rules import AlphaBeta, Epsilon, ZBox, ZPlus
from zennit.types import Linear as LinearTypes

from ..errors import XaipipeError
from .base import register
from .gradients import EmbeddedExplainer

__all__ = [
    "LRPExplainer",
    "LRPAlpha2Beta1",
    "LRPEpsilon",
    "LRPW2",
    "LRPZBox",
    "LRPZPlus",
    "SupportWSquare",
    "lrp_relevance",
    "text_cnn_composite",
    "word_support",
]


# --- small pieces ----------------------------------------------------------------------------------


def word_support(x: torch.Tensor, lengths: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Indicator ``(B, 1, max(N, K))`` of real words in the conv layer's input layout ``(B, E, N')``
    (``N' = max(N, K)``: the model pads documents shorter than the kernel)."""
    width = max(x.shape[1], int(kernel_size))
    pos = torch.arange(width, device=x.device)
    return (pos[None, :] < lengths.to(x.device)[:, None]).to(x.dtype)[:, None, :]


class SupportWSquare(BasicHook):
    """w^2 rule restricted to a support (Table 3.1): ``R_j = s_j sum_k w_jk^2 / (sum_j s_j w_jk^2) R_k``.

    ``support`` is a fixed tensor broadcastable to the layer input (1 = real input, 0 = padding); with
    ``support = 1`` this is Zennit's ``WSquare`` without the squared bias in the denominator.
    """

    def __init__(self, support: torch.Tensor, stabilizer: float | Callable = 1e-6):
        stabilizer_fn = Stabilizer.ensure(stabilizer)
        super().__init__(
            input_modifiers=[lambda input: support.to(input).expand_as(input)],
            param_modifiers=[ParamMod(lambda param, _: param ** 2, zero_params=["bias"])],
            output_modifiers=[lambda output: output],
            gradient_mapper=lambda out_grad, outputs: [out_grad / stabilizer_fn(outputs[0])],
            reducer=lambda inputs, gradients: inputs[0] * gradients[0],
        )


def text_cnn_composite(model: nn.Module, first: Hook, upper: Hook) -> Composite:
    """Zennit ``NameMapComposite``: ``first`` on the input conv layer (``model.conv``), ``upper`` on every
    other conv / Linear layer (the ``classifier.*`` Linear modules)."""
    conv = getattr(model, "conv", None)
    if not isinstance(conv, nn.Module):
        raise XaipipeError(f"LRP needs a TextCNN-like model with a `conv` input layer, got {type(model).__name__}")
    first_name = next(name for name, m in model.named_modules() if m is conv)
    upper_names = tuple(name for name, m in model.named_modules()
                        if isinstance(m, LinearTypes) and m is not conv)
    return NameMapComposite([((first_name,), first), (upper_names, upper)])


def lrp_relevance(model: nn.Module, composite: Composite, x: torch.Tensor, lengths: torch.Tensor,
                  target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Input relevance ``(B, N, E)`` and output relevance ``f_t(x)`` ``(B,)`` of a padded batch.

    The composite's hooks turn the backward pass into relevance propagation; the output "gradient"
    ``one_hot(t) * f_t(x)`` starts it with ``R_out = f_t(x)``.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), composite.context(model):
        logits = model.forward_embedded(x, lengths)
        start = torch.zeros_like(logits).scatter_(1, target[:, None], logits.detach().gather(1, target[:, None]))
        (rel,) = torch.autograd.grad(logits, x, grad_outputs=start)
    return rel, start.sum(1)


# --- explainers ------------------------------------------------------------------------------------


class LRPExplainer(EmbeddedExplainer):
    """Shared LRP explainer: subclasses build the composite for a batch (:meth:`composite`).

    ``extra["output_relevance"]`` is the relevance put into the network (the target logit), so that
    ``sum_i R_i`` can be compared with it (conservation). ``stabilizer`` (default 1e-6, Zennit's): added
    to every denominator with its sign (``sign(0) = +1``); it swallows ``R_k eps / (|z_k| + eps)``.
    """

    @property
    def stabilizer(self) -> float:
        return float(self.params["stabilizer"])

    def composite(self, x: torch.Tensor, lengths: torch.Tensor) -> Composite:
        raise NotImplementedError

    def attribute_embedded(self, x, lengths, target):
        rel, out = lrp_relevance(self.model, self.composite(x, lengths), x, lengths, target)
        return rel.sum(-1), {"output_relevance": out}


@register("lrp_epsilon")
class LRPEpsilon(LRPExplainer):
    """LRP-epsilon on every layer: ``R_j = sum_k a_j w_jk / (z_k + eps sign(z_k)) R_k`` (``z_k`` with bias).

    ``epsilon`` (default 0.01) is small against the pre-activations of a trained TextCNN (AG News
    teacher, unit-norm embeddings: median ``|z|`` of the hidden layer ~0.2, logits ~0.7), so relevance is
    nearly conserved, but it absorbs the relevance of weak, contradictory neurons (``|z_k| ~ eps``).
    ``epsilon -> 0`` is LRP-0, which on this ReLU / max-pool network equals ``gradient_x_input``
    (tested), so a tiny default would duplicate that method."""

    def composite(self, x, lengths):
        rule = Epsilon(epsilon=float(self.params["epsilon"]))
        return text_cnn_composite(self.model, rule, rule)


@register("lrp_zplus")
class LRPZPlus(LRPExplainer):
    """z+ rule (= alpha1-beta0) on the conv and all Linear layers (Table 3.1)."""

    def composite(self, x, lengths):
        return text_cnn_composite(self.model, ZPlus(self.stabilizer), ZPlus(self.stabilizer))


@register("lrp_alpha2beta1")
class LRPAlpha2Beta1(LRPExplainer):
    """alpha-beta rule (eq. 3.3) with ``alpha=2, beta=1`` on the conv and all Linear layers."""

    def composite(self, x, lengths):
        rule = AlphaBeta(alpha=2.0, beta=1.0, stabilizer=self.stabilizer)
        return text_cnn_composite(self.model, rule, rule)


@register("lrp_w2")
class LRPW2(LRPExplainer):
    """Deep Taylor: w^2 rule on the input conv layer (real-valued embeddings), z+ above (Table 3.1)."""

    def composite(self, x, lengths):
        support = word_support(x, lengths, self.model.kernel_size)
        return text_cnn_composite(self.model, SupportWSquare(support, self.stabilizer), ZPlus(self.stabilizer))


@register("lrp_zbox")
class LRPZBox(LRPExplainer):
    """Deep Taylor: z^beta (ZBox) rule on the input conv layer, z+ above (Table 3.1).

    ``low`` / ``high`` (default ``None``): the box ``l <= x <= h`` of an embedding, a scalar or one value
    per embedding dimension; ``None`` = the per-dimension min / max of the model's embedding matrix.
    """

    def _bound(self, key: str, reduce: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        emb = self.model.embedding
        value = self.params[key]
        if value is None:
            return reduce(emb)
        bound = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=emb.dtype, device=emb.device)
        if bound.ndim > 1 or bound.numel() not in (1, emb.shape[1]):
            raise XaipipeError(f"{self.name}: {key} must be a number or {emb.shape[1]} numbers (one per "
                               f"embedding dimension), got shape {tuple(bound.shape)}")
        return bound.reshape(-1).expand(emb.shape[1])

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)``, each ``(E,)``."""
        low = self._bound("low", lambda e: e.min(0).values)
        high = self._bound("high", lambda e: e.max(0).values)
        if bool((low > high).any()):
            raise XaipipeError(f"{self.name}: low must not exceed high")
        return low, high

    def composite(self, x, lengths):
        support = word_support(x, lengths, self.model.kernel_size)  # (B, 1, N')
        low, high = (b.to(x)[None, :, None] * support for b in self.bounds())  # (B, E, N'); [0, 0] on padding
        return text_cnn_composite(self.model, ZBox(low=low, high=high, stabilizer=self.stabilizer),
                                  ZPlus(self.stabilizer))
