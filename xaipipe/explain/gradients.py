"""Gradient and perturbation explainers on the embedded document: baselines for the relevance maps of
report section 3, scored with the deletion metric of section 4. Formulas: Chormai (2018), "Designing
Recurrent Neural Networks for Explainability" (the companion thesis), sections 3.2.1-3.2.2.

All methods explain the target logit ``f_t(x)`` of :meth:`TextCNN.forward_embedded` with respect to the
embedded document ``x`` (``N x E``) and reduce the embedding dimensions to one value per word ``i``:

* ``sensitivity`` (sensitivity analysis, thesis 3.2.1, ``R_i = (d f / d x_i)^2``):
  ``R_i = sum_e (d f_t / d x_ie)^2``.
* ``gradient_x_input`` (simple Taylor decomposition at the root point ``eps x``, ``eps -> 0``, thesis
  3.2.2, ``f(x) = sum_i (d f / d x_i) x_i`` for a bias-free ReLU network):
  ``R_i = sum_e x_ie * d f_t / d x_ie``.
* ``integrated_gradients`` (Sundararajan et al. 2017, via Captum): ``R_i = sum_e x_ie *
  int_0^1 d f_t(a x) / d x_ie da`` with the all-zero document as baseline; completeness
  ``sum_i R_i = f_t(x) - f_t(0)`` up to the quadrature error reported as ``extra["convergence_delta"]``.
* ``occlusion`` (leave-one-out, via Captum ``FeatureAblation``): ``R_i = f_t(x) - f_t(x with x_i = 0)``.

A batch of documents of different lengths is explained at once: documents are zero-padded to the batch
length (:func:`~xaipipe.explain.base.pad_embedded`) and ``lengths`` is passed to the model, which masks
the padding out of the max-pool, so padded and unpadded documents give the same logits and gradients.
Only the real words are returned (padding is dropped), in word order.

:class:`EmbeddedExplainer` is the small shared piece (pad -> ``attribute_embedded`` -> unpad) that
:mod:`xaipipe.explain.lrp` builds on as well.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import XaipipeError
from ..models.fast import use_fast_path
from .base import Explainer, pad_embedded, register, resolve_params

__all__ = [
    "EmbeddedExplainer",
    "GradientXInput",
    "IntegratedGradientsExplainer",
    "Occlusion",
    "Sensitivity",
    "split_words",
    "target_gradient",
]


def split_words(rel: torch.Tensor, lengths: torch.Tensor,
                extra: dict[str, torch.Tensor] | None = None) -> list[np.ndarray | tuple[np.ndarray, dict]]:
    """Word relevance ``(B, N)`` -> one array of ``lengths[b]`` values per document (padding dropped);
    with ``extra`` (per-document tensors ``(B,)``), ``(array, {key: float})`` pairs."""
    rel = rel.detach().to("cpu", torch.float64).numpy()
    out: list[np.ndarray | tuple[np.ndarray, dict]] = []
    for b, n in enumerate(lengths.tolist()):
        r = rel[b, :n].copy()
        if extra:
            out.append((r, {k: float(v[b]) for k, v in extra.items()}))
        else:
            out.append(r)
    return out


def target_gradient(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor,
                    target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``d f_t / d x`` ``(B, N, E)`` and the logits ``(B, n_classes)`` of a padded batch.

    Documents do not interact (no batch statistics in eval mode), so the gradient of the summed target
    logits is every document's own gradient.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model.forward_embedded(x, lengths)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x)
    return grad, logits.detach()


class EmbeddedExplainer(Explainer):
    """An explainer that works on the zero-padded embedded batch.

    Subclasses implement :meth:`attribute_embedded`, which returns word relevance ``(B, N)`` (padding
    included; it is dropped here), optionally with a dict of per-document tensors ``(B,)`` stored in
    ``Explanation.extra``. The accepted parameters and their defaults are the method's declaration in
    :mod:`xaipipe.method_params` (unknown or invalid ones are an error); a subclass that is not declared
    there sets :attr:`defaults` instead. ``seed`` is accepted and ignored (the explain stage hands one to
    every ``**params`` explainer; these methods are deterministic).
    """

    #: accepted parameters of a method without a declaration in xaipipe.method_params (None: declared)
    defaults: ClassVar[dict[str, Any] | None] = None

    def __init__(self, model: nn.Module, **params: Any):
        if self.defaults is not None:
            params.pop("seed", None)
            resolved = resolve_params(self.name, params, self.defaults)
        else:
            resolved = resolve_params(self.name, params)
            resolved.pop("seed", None)
        super().__init__(model, **resolved)

    def _attribute_batch(self, docs: list[np.ndarray], target: list[int]) -> list:
        x, lengths = pad_embedded(self.model, docs)
        t = torch.as_tensor(target, dtype=torch.long, device=x.device)
        rel = self.attribute_embedded(x, lengths, t)
        extra = None
        if isinstance(rel, tuple):
            rel, extra = rel
        return split_words(rel, lengths, extra)

    def attribute_embedded(self, x: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor
                           ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Word relevance ``(B, N)`` for the padded batch ``x`` ``(B, N, E)`` with ``lengths`` ``(B,)``."""
        raise NotImplementedError


@register("sensitivity")
class Sensitivity(EmbeddedExplainer):
    """Sensitivity analysis: ``R_i = ||d f_t / d x_i||^2`` (squared gradient summed over dimensions)."""

    def attribute_embedded(self, x, lengths, target):
        grad, _ = target_gradient(self.model, x, lengths, target)
        return (grad ** 2).sum(-1)


@register("gradient_x_input")
class GradientXInput(EmbeddedExplainer):
    """Gradient x input: ``R_i = sum_e x_ie * d f_t / d x_ie``."""

    def attribute_embedded(self, x, lengths, target):
        grad, _ = target_gradient(self.model, x, lengths, target)
        return (grad * x).sum(-1)


@register("integrated_gradients")
class IntegratedGradientsExplainer(EmbeddedExplainer):
    """Integrated gradients with the zero-vector baseline (Captum), summed per word.

    Parameters: ``n_steps`` (50) quadrature points (Gauss-Legendre); ``internal_batch_size`` (128): rows
    (documents x steps) per forward pass, at least the number of documents in a batch.
    ``extra["convergence_delta"]`` is Captum's ``sum_i R_i - (f_t(x) - f_t(0))``.
    """

    def attribute_embedded(self, x, lengths, target):
        n_steps = int(self.params["n_steps"])
        if n_steps < 1:
            raise XaipipeError(f"{self.name}: n_steps must be >= 1, got {n_steps}")
        ibs = self.params["internal_batch_size"]
        ibs = None if ibs is None else max(int(ibs), x.shape[0])
        from captum.attr import IntegratedGradients  # here: Captum takes seconds to import

        ig = IntegratedGradients(self.model.forward_embedded)
        with torch.enable_grad():
            attr, delta = ig.attribute(x.detach(), baselines=torch.zeros_like(x), target=target,
                                       additional_forward_args=(lengths,), n_steps=n_steps,
                                       internal_batch_size=ibs, return_convergence_delta=True)
        return attr.detach().sum(-1), {"convergence_delta": delta.detach()}


@torch.no_grad()
def occlusion_fast(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Leave-one-out values ``(B, N)`` (0 in the padding) through the first-layer fast path: one
    :func:`~xaipipe.models.fast.greedy_step_values` call per document evaluates all ``L`` deletions in
    ``O(L · K · C)``."""
    from ..models.fast import DocumentProjection, greedy_step_values

    out = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)
    head = lambda pooled: model.classifier(model.dropout_in(torch.relu(pooled)))  # noqa: E731
    for b, n in enumerate(lengths.tolist()):
        proj = DocumentProjection(model, x[b, :n])
        t = int(target[b])
        full = head(proj.z_full.amax(0, keepdim=True))[0, t]
        cand = torch.arange(n, device=x.device)
        out[b, :n] = full - head(greedy_step_values(proj, proj.z_full, cand))[:, t]
    return out


@register("occlusion")
class Occlusion(EmbeddedExplainer):
    """Leave-one-out occlusion: ``R_i = f_t(x) - f_t(x with word i replaced by the zero vector)``.

    Captum ``FeatureAblation`` with a feature mask that groups the ``E`` dimensions of each word (one
    feature per position), zero baseline; ``perturbations_per_eval`` (32) ablated positions per forward
    pass (the direct path). For TextCNN models the fast path (:func:`occlusion_fast`) computes the same
    values from the first layer's tap projections. Captum gives every dimension of a group the group's value, so a word's relevance is read from
    one dimension (not summed).
    """

    def attribute_embedded(self, x, lengths, target):
        ppe = int(self.params["perturbations_per_eval"])
        if ppe < 1:
            raise XaipipeError(f"{self.name}: perturbations_per_eval must be >= 1, got {ppe}")
        if use_fast_path(self.model):
            return occlusion_fast(self.model, x, lengths, target)
        from captum.attr import FeatureAblation  # here: Captum takes seconds to import

        mask = torch.arange(x.shape[1], device=x.device).view(1, -1, 1)
        with torch.no_grad():
            attr = FeatureAblation(self.model.forward_embedded).attribute(
                x.detach(), baselines=0.0, target=target, additional_forward_args=(lengths,),
                feature_mask=mask, perturbations_per_eval=ppe)
        return attr[:, :, 0]
