"""Deep Taylor LRP through time for the recurrent cells (Chormai 2018, sections 3.3 and 4.2, Table 3.1).

Relevance starts at the predicted logit, ``f(x) = max_i h_i`` (section 4.2), and is propagated back
through the head, the last step's layer 4, then alternately through the recurrent layer 5 and layer 4
of every earlier step down to the pixels of every column block (Algorithm 1 applied to the unrolled
network). Rules (Table 3.1):

* **z+** on every layer whose input is a ReLU activation (``a_j >= 0``): layers 1'', 4 (Deep, DeepV2,
  ConvDeep), 5, 4', 6 and C2: ``R_j = sum_k a_j w_jk^+ / (sum_j a_j w_jk^+) R_k``.
* **z^beta** on the layer that reads the pixels (``l_j <= x_j <= h_j``; the box is ``rnn.pixel_range``):
  ``R_j = sum_k (x_j w_jk - l_j w_jk^+ - h_j w_jk^-) / (sum_j ...) R_k`` (1' or C1).
  Table 3.1 prints the last two terms with ``w^-`` and ``w^+`` swapped; the derivation above it (root
  point ``l_j 1{w_jk >= 0} + h_j 1{w_jk <= 0}``, eq. 3.23-3.24) gives the form used here, which is also
  Zennit's ``ZBox`` and Montavon et al. (2017).
* **z^beta + z+ in one layer** (:class:`PixelBoxZPlus`, a custom Zennit rule): the Shallow cell
  concatenates the pixels ``x_t`` and the recurrent input ``r_t`` before layer 4, so one layer has
  both kinds of input. Each input keeps its own root point inside its domain — ``l_j`` / ``h_j`` for a
  pixel, ``0`` / ``a_j`` for a ReLU unit (the z+ root ``a_j 1{w_jk < 0}`` of section 3.3) — and the
  outputs share one denominator: ``q_jk = x_j w_jk - l_j w_jk^+ - h_j w_jk^-`` for pixels and
  ``q_jk = a_j w_jk^+`` for ``r_t`` (a box ``[0, a_j]``). This is the rule of the thesis's public code
  for that layer.
* Max pooling passes each pooled unit's relevance to its maximum (winner-take-all, the gradient);
  ReLU, flatten, concatenation and the column split pass relevance on as the gradient does, and the
  relevance of ``a_t`` is the sum of what the head (last step) and ``r_{t+1}`` send back (the sum rule
  of eq. 3.6).

Why an unrolled copy (:class:`UnrolledRNN`): Zennit attaches one rule per module and stores that
module's last input, so a layer that is called ``T`` times would explain every step with the last
step's input. The explainer therefore builds the time-unrolled network with one plain ``nn.Linear`` /
``nn.Conv2d`` per layer *and step* (same weights; the effective bias ``-softplus(b)``; no dropout), runs
the same recurrence (:func:`xaipipe.rnn.cells.run_sequence`) and lets Zennit's rules turn its backward
pass into relevance propagation.

Conservation: every rule distributes ``R_k`` in proportion to non-negative terms whose sum is the
denominator, and with biases ``<= 0`` no share goes to the bias (z+: ``b^+ = 0``; z^beta: the bias
cancels), so ``sum_pixels R = f(x)`` for every image (tested), up to Zennit's stabilizer ``1e-6``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from zennit.core import BasicHook, Composite, Stabilizer
from zennit.rules import ClampMod, NoMod, ZBox, ZPlus

from .. import relevance as registry
from ..errors import XaipipeError
from .cells import RecurrentClassifier, plain_copy, run_sequence
from .data import split_columns

log = logging.getLogger(__name__)

__all__ = ["LRPResult", "PixelBoxZPlus", "UnrolledRNN", "deep_taylor_composite", "explain", "explain_unrolled",
           "step_relevance"]


class PixelBoxZPlus(BasicHook):
    """z^beta on the first ``n_box`` inputs (pixels in ``[low, high]``), z+ on the others (ReLU inputs,
    ``>= 0``), one shared denominator (see the module docstring).

    Written as Zennit's ``ZBox`` with per-input bounds: ``low = l`` / ``high = h`` for pixels and
    ``low = 0`` / ``high = a_j`` for ReLU inputs; ``a_j w^+ = a_j w - 0 w^+ - a_j w^-``.
    """

    def __init__(self, n_box: int, low: float, high: float, stabilizer: float | Callable = 1e-6):
        stabilizer_fn = Stabilizer.ensure(stabilizer)
        n_box = int(n_box)

        def is_box(x: torch.Tensor) -> torch.Tensor:
            return (torch.arange(x.shape[1], device=x.device) < n_box)[None, :]

        def lows(x: torch.Tensor) -> torch.Tensor:
            return torch.where(is_box(x), torch.full_like(x, float(low)), torch.zeros_like(x)).detach()

        def highs(x: torch.Tensor) -> torch.Tensor:
            # detached: the box of a ReLU input is a constant of the rule, not a path to the input
            return torch.where(is_box(x), torch.full_like(x, float(high)), x.detach().clamp(min=0)).detach()

        def sub(positive, *negatives):
            return positive - sum(negatives)

        super().__init__(
            input_modifiers=[lambda x: x, lows, highs],
            param_modifiers=[NoMod(), ClampMod(min=0.0), ClampMod(max=0.0)],
            output_modifiers=[lambda out: out] * 3,
            gradient_mapper=lambda out_grad, outputs: (out_grad / stabilizer_fn(sub(*outputs)),) * 3,
            reducer=lambda inputs, gradients: sub(*(i * g for i, g in zip(inputs, gradients))),
        )


class UnrolledRNN(nn.Module):
    """The time-unrolled evaluation copy of a trained cell: per-step plain layers with the same weights,
    effective (non-positive) biases and no dropout. ``forward`` equals the model's eval forward."""

    def __init__(self, model: RecurrentClassifier):
        super().__init__()
        t_len = model.seq
        self.seq, self.recur, self.n_pixels = model.seq, model.recur, model.n_pixels
        self.pixel_layer = model.pixel_layer
        self.encoders = nn.ModuleList(plain_copy(model.encoder) for _ in range(t_len))
        self.cells = nn.ModuleList(model.cell.to_plain() for _ in range(t_len))
        self.recurrents = nn.ModuleList(model.recurrent.to_plain() for _ in range(t_len - 1)) \
            if model.recur else nn.ModuleList()
        self.head = plain_copy(model.head)
        self.eval()

    def pixel_modules(self) -> list[str]:
        """Names of the per-step modules that read pixels (z^beta)."""
        if self.pixel_layer == "cell":
            return [f"cells.{t}" for t in range(self.seq)]
        sub = self.pixel_layer.split(".", 1)[1]
        return [f"encoders.{t}.{sub}" for t in range(self.seq)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        steps = split_columns(images, self.seq)
        return run_sequence(steps, self.encoders, self.cells, self.recurrents, self.head, self.recur)


def deep_taylor_composite(net: UnrolledRNN, low: float, high: float, stabilizer: float = 1e-6) -> Composite:
    """Zennit composite of the deep Taylor rules: z^beta (or :class:`PixelBoxZPlus` for Shallow's
    layer 4) on the pixel layers, z+ on every other Linear / Conv2d."""
    pixel = set(net.pixel_modules())
    mixed = net.pixel_layer == "cell" and net.recur > 0
    box = (torch.tensor(float(low)), torch.tensor(float(high)))

    def module_map(ctx, name, module):
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            return None
        if name in pixel:
            if mixed:
                return PixelBoxZPlus(net.n_pixels, low, high, stabilizer)
            return ZBox(low=box[0], high=box[1], stabilizer=stabilizer)
        return ZPlus(stabilizer=stabilizer)

    return Composite(module_map=module_map)


@dataclass
class LRPResult:
    relevance: np.ndarray  # (N, H, W) pixel relevance
    output: np.ndarray  # (N,) relevance put in: the target logit f(x)
    target: np.ndarray  # (N,) explained class
    logits: np.ndarray  # (N, C)
    seconds: float

    @property
    def conservation_error(self) -> np.ndarray:
        """``sum_pixels R - f(x)`` per image."""
        return self.relevance.reshape(len(self.relevance), -1).sum(1) - self.output


@registry.register("deep_taylor", "rnn")
def explain(model: RecurrentClassifier, images: torch.Tensor, target: Sequence[int] | torch.Tensor | None = None,
            low: float = 0.0, high: float = 1.0, batch_size: int = 256, stabilizer: float = 1e-6) -> LRPResult:
    """Deep Taylor LRP through time of ``(N, H, W)`` scaled images; ``target=None`` explains the
    predicted class (``f(x) = max_i h_i``). ``low`` / ``high``: the pixel box of z^beta."""
    device = next(model.parameters()).device
    return explain_unrolled(UnrolledRNN(model).to(device), images, target, low, high, batch_size, stabilizer)


def explain_unrolled(net: UnrolledRNN, images: torch.Tensor, target: Sequence[int] | torch.Tensor | None = None,
                     low: float = 0.0, high: float = 1.0, batch_size: int = 256,
                     stabilizer: float = 1e-6) -> LRPResult:
    """:func:`explain` on an already unrolled network."""
    if images.ndim != 3:
        raise XaipipeError(f"explain: expected (N, H, W) images, got shape {tuple(images.shape)}")
    if len(images) and (float(images.min()) < low - 1e-6 or float(images.max()) > high + 1e-6):
        raise XaipipeError(f"explain: pixels outside the z^beta box [{low}, {high}] (min {float(images.min()):.3g}, "
                           f"max {float(images.max()):.3g}); scale them with rnn.pixel_range")
    device = net.cells[0].weight.device
    composite = deep_taylor_composite(net, low, high, stabilizer)
    tgt_all = None if target is None else torch.as_tensor(np.asarray(target), dtype=torch.long)
    rels, outs, tgts, logits_all = [], [], [], []
    t0 = time.perf_counter()
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].detach().to(device=device, dtype=net.cells[0].weight.dtype).requires_grad_(True)
        with torch.enable_grad(), composite.context(net):
            logits = net(x)
            tgt = logits.detach().argmax(1) if tgt_all is None else tgt_all[i:i + batch_size].to(device)
            f = logits.detach().gather(1, tgt[:, None])
            start = torch.zeros_like(logits).scatter_(1, tgt[:, None], f)
            (rel,) = torch.autograd.grad(logits, x, grad_outputs=start)
        rels.append(rel.detach().cpu())
        outs.append(f[:, 0].cpu())
        tgts.append(tgt.cpu())
        logits_all.append(logits.detach().cpu())
    seconds = time.perf_counter() - t0
    cat = lambda xs: torch.cat(xs).numpy() if xs else np.zeros((0,))  # noqa: E731
    return LRPResult(relevance=cat(rels), output=cat(outs), target=cat(tgts), logits=cat(logits_all),
                     seconds=seconds)


def step_relevance(relevance: np.ndarray | torch.Tensor, seq: int) -> np.ndarray:
    """Relevance per column block ``(N, SEQ)`` of pixel relevance ``(N, H, W)``."""
    rel = torch.as_tensor(np.asarray(relevance))
    return split_columns(rel, seq).sum(dim=(2, 3)).numpy()
