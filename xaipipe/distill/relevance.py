"""Differentiable relevance maps of ReLU MLPs, for explanation-guided distillation (report section 7.3).

The MNIST distillation loss compares the relevance map of the student with the teacher's, so the
student's map must be a differentiable function of the student's weights (double backpropagation: the
loss's gradient flows back *through* the relevance propagation). Every rule here is therefore written
as explicit tensor operations on the layers' weights and recorded activations (matrix form), never
with hooks that detach. One forward pass (:func:`trace_mlp`) records, for every ``nn.Linear``, its
weight, bias, input activation ``a`` and the derivative of the element-wise operations (ReLU, dropout)
between the previous layer and ``a``; the rules then walk the layers backwards.

Relevance maps are computed for ``K`` target classes per sample at once: ``targets`` is ``(B, K)``
and the result ``(B, K, *input_shape)`` (``K = 1``: the ground-truth class, report section 7.3;
``K = C``: every class, the variant of section 9, "Further Thoughts").

Registered rules (:data:`RELEVANCE`, :func:`register_relevance`):

``rap``
    Relative attributing propagation (Nam, Gur, Choi, Wolf and Lee, AAAI 2020, arXiv:1904.00605),
    the method of the report, following the authors' reference implementation for linear layers
    (``wjNam/Relative_Attributing_Propagation``, ``modules/layers.py``, ``Linear.RAP_relprop``):

    *Output layer* (``first_prop`` + ``redistribute``) for target ``t`` with weights ``w = W[t]`` and
    bias ``b = b[t]``: the contributions ``c_j = a_j w_j`` are split into positive
    (``Pos = Σ a⁺w⁺ + a⁻w⁻``) and negative (``Neg = Σ a⁺w⁻ + a⁻w⁺``) parts; the bias is shared
    ``b·Pos/(Pos+Neg)`` over the ``a⁺w⁺`` terms and ``b·Neg/(Pos+Neg)`` over the ``a⁺w⁻`` terms
    (each in proportion); then the relevance becomes *relative*: ``R_j = |r_j| · Σr / Σ|r|`` —
    every hidden unit is attributed by the magnitude of its influence, and ``Σ_j R_j = z_t`` (the
    target logit).

    *Hidden and input layers* (``backward`` / ``pos_prop`` / ``shift_rel``), for output relevance
    ``R_k`` (units with ``R_k = 0`` are masked out), ``Z⁺_k = Σ_j a⁺_j w⁺_kj`` and
    ``Z⁻_k = Σ_j a⁺_j |w⁻_kj|``:

        C_j = a⁺_j Σ_k [ R_k / Z⁺_k · w⁺_kj  +  R_k / (Z⁺_k + Z⁻_k) · |w⁻_kj| ]

    (each ``R_k`` goes in full to its positive contributors and, in addition, a share
    ``Z⁻/(Z⁺+Z⁻)`` of it to the magnitudes of its negative contributors), followed by the uniform
    shift ``C_j ← C_j − (ΣC − ΣR)/n`` over the ``n`` units with ``C_j ≠ 0``, which restores
    conservation (``ΣC = ΣR``) and makes weakly supported units negative. Negative inputs ``a⁻``
    are handled by the mirrored term, as in the reference; biases of hidden layers are not
    propagated (they are commented out in the reference too). For non-negative inputs (pixels in
    [0, 1], ReLU activations) the input map sums to the target logit; with inputs of both signs each
    of the two terms conserves the total on its own, as in the reference, so the map sums to twice it.

    Two consequences for the distillation loss: as the output layer's inputs are ReLU outputs, its
    bias only rescales the whole map, which the per-map scaling to [0, 1] removes; and pixels that are exactly 0
    get relevance 0 (they are excluded from the shift).

``lrp_zplus``
    LRP z⁺ (Bach et al. 2015; Montavon et al. 2017, deep Taylor) in its α=1, β=0 form, biases
    ignored: ``R_j = Σ_k (a⁺_j w⁺_kj + a⁻_j w⁻_kj) / Σ_j(a⁺_j w⁺_kj + a⁻_j w⁻_kj) · R_k``, starting
    from the target logit. Equals Zennit's ``ZPlus(zero_params='bias')`` (tested).

``gradient_x_input``
    ``x ⊙ ∂z_t/∂x``, with the gradient written out as ``(e_t W_L D_{L-1} W_{L-1} … D_1 W_1)`` where
    ``D`` are the recorded ReLU (and dropout) derivatives.

Maps are scaled to ``[0, 1]`` per map for the loss by :func:`scale_maps` (:data:`SCALINGS`):
``minmax`` (default), ``maxabs`` (``(R/max|R| + 1)/2``, the colour scaling of the RAP authors'
``hm_to_rgb``, so 0 ↦ 0.5) or ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .. import relevance as registry
from ..errors import XaipipeError

__all__ = ["LinearStep", "MLPTrace", "RELEVANCE", "SCALINGS", "get_relevance", "register_relevance",
           "relevance", "relevance_from_trace", "safe_divide", "scale_maps", "trace_mlp", "all_classes"]

SUPPORTED = (nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Identity)


@dataclass(frozen=True)
class LinearStep:
    """One ``nn.Linear`` of a traced forward pass.

    ``input``: the activation entering the layer, ``(B, n_in)``. ``input_grad``: the derivative of
    the element-wise operations between the previous layer's output (or the network input) and
    ``input`` (ReLU masks times dropout masks), ``(B, n_in)``, or ``None`` when there are none."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    input: torch.Tensor
    input_grad: torch.Tensor | None


@dataclass(frozen=True)
class MLPTrace:
    """A forward pass: the linear layers in order, the logits ``(B, C)`` and the input's shape."""

    steps: list[LinearStep]
    logits: torch.Tensor
    input_shape: tuple[int, ...]


def _modules(model: nn.Module) -> list[nn.Module]:
    seq = getattr(model, "net", model)
    if not isinstance(seq, nn.Sequential):
        raise XaipipeError(f"relevance maps need an MLP built as nn.Sequential (xaipipe.models.MLP); got "
                           f"{type(model).__name__}")
    return list(seq)


def trace_mlp(model: nn.Module, x: torch.Tensor) -> MLPTrace:
    """Run ``model`` on ``x`` layer by layer, recording what the relevance rules need.

    Supported layers: Flatten, Linear, ReLU, Dropout (in training mode its mask is drawn here and
    recorded), Identity. The computation keeps the autograd graph, so maps built from the trace are
    differentiable in the model's weights."""
    h = x
    steps: list[LinearStep] = []
    factor: torch.Tensor | None = None
    mods = _modules(model)
    for m in mods:
        if isinstance(m, nn.Linear):
            if h.dim() != 2:
                raise XaipipeError(f"relevance maps: nn.Linear got a {h.dim()}-D input; put nn.Flatten first")
            steps.append(LinearStep(m.weight, m.bias, h, factor))
            h = F.linear(h, m.weight, m.bias)
            factor = None
        elif isinstance(m, nn.ReLU):
            d = (h > 0).to(h.dtype)
            factor = d if factor is None else factor * d
            h = F.relu(h)
        elif isinstance(m, nn.Dropout):
            if m.training and m.p > 0:
                d = (torch.rand_like(h) >= m.p).to(h.dtype) / (1.0 - m.p)
                factor = d if factor is None else factor * d
                h = h * d
        elif isinstance(m, nn.Flatten):
            if factor is not None or steps:
                raise XaipipeError("relevance maps: nn.Flatten is supported only before the first layer")
            h = m(h)
        elif isinstance(m, nn.Identity):
            continue
        else:
            raise XaipipeError(f"relevance maps: layer {type(m).__name__} is not supported; supported: "
                               f"{', '.join(c.__name__ for c in SUPPORTED)}")
    if not steps or not isinstance(mods[-1], nn.Linear):
        raise XaipipeError("relevance maps: the network must end with an nn.Linear layer (the logits)")
    return MLPTrace(steps, h, tuple(x.shape))


# --- helpers -----------------------------------------------------------------------------------------
def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b`` where ``b != 0``, else 0 — with finite gradients everywhere (no ``0 · inf``)."""
    zero = b == 0
    return torch.where(zero, a.new_zeros(()), a / b.masked_fill(zero, 1.0))


def all_classes(batch: int, n_classes: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Targets ``(batch, n_classes)`` = every class for every sample (section 9's variant)."""
    return torch.arange(n_classes, device=device).expand(batch, n_classes)


def _targets(targets: torch.Tensor, batch: int) -> torch.Tensor:
    t = torch.as_tensor(targets).long()
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2 or t.shape[0] != batch:
        raise XaipipeError(f"relevance maps: targets must be (B,) or (B, K) with B = {batch}, got "
                           f"{tuple(t.shape)}")
    return t


def _one_hot(t: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    return F.one_hot(t, n).to(like.dtype)


# --- registry ----------------------------------------------------------------------------------------
Rule = Callable[[MLPTrace, torch.Tensor], torch.Tensor]
RELEVANCE: dict[str, Rule] = registry.IMPLEMENTATIONS["mlp"]  #: the MLP rules of the one registry


def register_relevance(name: str):
    """``@register_relevance(name)`` registers ``fn(trace, targets (B, K)) -> (B, K, n_in)`` as the MLP
    implementation of method ``name`` in the one registry of relevance methods (:mod:`xaipipe.relevance`)."""
    return registry.register(name, "mlp")


def get_relevance(name: str) -> Rule:
    try:
        return RELEVANCE[name]
    except KeyError:
        raise XaipipeError(f"unknown relevance rule {name!r}; known: {', '.join(sorted(RELEVANCE))}") from None


def relevance_from_trace(method: str, trace: MLPTrace, targets: torch.Tensor) -> torch.Tensor:
    """Maps ``(B, K, *input_shape[1:])`` of the traced pass for ``targets`` ``(B,)`` or ``(B, K)``."""
    b = trace.input_shape[0]
    t = _targets(targets, b).to(trace.logits.device)
    n_classes = trace.logits.shape[1]
    if int(t.min()) < 0 or int(t.max()) >= n_classes:
        raise XaipipeError(f"relevance maps: targets must lie in 0..{n_classes - 1}")
    r = get_relevance(method)(trace, t)
    return r.reshape(b, t.shape[1], *trace.input_shape[1:])


def relevance(method: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Relevance maps of ``model`` at ``x`` for ``targets`` (see :func:`relevance_from_trace`)."""
    return relevance_from_trace(method, trace_mlp(model, x), targets)


# --- RAP ---------------------------------------------------------------------------------------------
def _rap_output_layer(step: LinearStep, t: torch.Tensor) -> torch.Tensor:
    """``first_prop`` + ``redistribute`` of the reference for targets ``t`` ``(B, K)``."""
    a = step.input[:, None, :]                                   # (B, 1, n_in)
    w = step.weight[t]                                           # (B, K, n_in)
    px, nx = a.clamp(min=0), a.clamp(max=0)
    pw, nw = w.clamp(min=0), w.clamp(max=0)
    z_pp, z_pn = (px * pw).sum(-1), (px * nw).sum(-1)            # Z1, Z2 of the reference
    pos = z_pp + (nx * nw).sum(-1)
    neg = z_pn + (nx * pw).sum(-1)
    r = a * w                                                    # C1 + C2 + C3 + C4 = a_j w_tj
    if step.bias is not None:
        b = step.bias[t]
        b_pos = b * safe_divide(pos, pos + neg)
        b_neg = b * safe_divide(neg, pos + neg)
        r = r + px * pw * safe_divide(b_pos, z_pp)[..., None] + px * nw * safe_divide(b_neg, z_pn)[..., None]
    # relative attribution: magnitudes, rescaled so that the layer keeps the total (the target logit)
    return r.abs() * safe_divide(r.sum(-1), r.abs().sum(-1))[..., None]


def _shift_rel(c: torch.Tensor, excess: torch.Tensor) -> torch.Tensor:
    nz = (c != 0).to(c.dtype)
    return c - safe_divide(excess, nz.sum(-1))[..., None] * nz


def _rap_pos_prop(r: torch.Tensor, mask: torch.Tensor, x1: torch.Tensor, wa: torch.Tensor,
                  wb: torch.Tensor) -> torch.Tensor:
    """``pos_prop`` of the reference: ``Za = x1·waᵀ``, ``Zb = x1·wbᵀ`` (both ≥ 0)."""
    za = (x1 @ wa.T) * mask                                      # (B, K, n_out)
    zb = (x1 @ wb.T) * mask
    zab = za + zb
    sa = safe_divide(r * safe_divide(zab, zab), za)              # R_pos and R_neg terms together
    sb = safe_divide(r * safe_divide(zb, zab), zb)
    c = x1 * ((sa * mask) @ wa + (sb * mask) @ wb)               # (B, K, n_in)
    return _shift_rel(c, c.sum(-1) - r.sum(-1))


def _rap_hidden_layer(step: LinearStep, r: torch.Tensor) -> torch.Tensor:
    a = step.input[:, None, :]
    px, nx = a.clamp(min=0), a.clamp(max=0)
    pw, nw = step.weight.clamp(min=0), step.weight.clamp(max=0)
    mask = (r != 0).to(r.dtype)
    c = _rap_pos_prop(r, mask, px, pw, -nw)
    if bool((a < 0).any()):  # the mirrored term is exactly 0 for non-negative inputs (ReLU, pixels)
        c = c + _rap_pos_prop(r, mask, nx, -pw, nw)
    return c


@register_relevance("rap")
def rap(trace: MLPTrace, t: torch.Tensor) -> torch.Tensor:
    """Relative attributing propagation (module docstring)."""
    steps = trace.steps
    r = _rap_output_layer(steps[-1], t)
    for step in reversed(steps[:-1]):
        r = _rap_hidden_layer(step, r)       # ReLU and dropout pass relevance unchanged
    return r


# --- LRP z+ ------------------------------------------------------------------------------------------
@register_relevance("lrp_zplus")
def lrp_zplus(trace: MLPTrace, t: torch.Tensor) -> torch.Tensor:
    """z⁺ (α=1, β=0), biases ignored, from the target logit (module docstring)."""
    logits = trace.logits
    r = _one_hot(t, logits.shape[1], logits) * logits[:, None, :]
    for step in reversed(trace.steps):
        a = step.input[:, None, :]
        px, nx = a.clamp(min=0), a.clamp(max=0)
        pw, nw = step.weight.clamp(min=0), step.weight.clamp(max=0)
        s = safe_divide(r, px @ pw.T + nx @ nw.T)
        r = px * (s @ pw) + nx * (s @ nw)
    return r


# --- gradient x input --------------------------------------------------------------------------------
@register_relevance("gradient_x_input")
def gradient_x_input(trace: MLPTrace, t: torch.Tensor) -> torch.Tensor:
    """``x ⊙ ∂z_t/∂x`` with the chain rule written out (module docstring)."""
    logits = trace.logits
    g = _one_hot(t, logits.shape[1], logits)
    for step in reversed(trace.steps):
        g = g @ step.weight
        if step.input_grad is not None:
            g = g * step.input_grad[:, None, :]
    return trace.steps[0].input[:, None, :] * g


# --- scaling to [0, 1] -------------------------------------------------------------------------------
def _minmax(r: torch.Tensor) -> torch.Tensor:
    lo = r.amin(-1, keepdim=True)
    hi = r.amax(-1, keepdim=True)
    return safe_divide(r - lo, hi - lo)


def _maxabs(r: torch.Tensor) -> torch.Tensor:
    return (safe_divide(r, r.abs().amax(-1, keepdim=True)) + 1.0) / 2.0


SCALINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "minmax": _minmax,
    "maxabs": _maxabs,
    "none": lambda r: r,
}


def scale_maps(r: torch.Tensor, mode: str = "minmax") -> torch.Tensor:
    """Scale every map of ``r`` ``(B, K, ...)`` to ``[0, 1]`` on its own (dimensions after ``K``).

    ``minmax``: ``(R - min)/(max - min)`` (a constant map becomes 0); ``maxabs``: ``(R/max|R| + 1)/2``;
    ``none``: unchanged. Differentiable (sub-gradients at the extremes)."""
    try:
        fn = SCALINGS[mode]
    except KeyError:
        raise XaipipeError(f"unknown map scaling {mode!r}; known: {', '.join(SCALINGS)}") from None
    flat = r.reshape(*r.shape[:2], -1)
    return fn(flat).reshape(r.shape)
