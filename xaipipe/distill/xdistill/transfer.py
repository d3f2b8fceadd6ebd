"""Feature-transfer losses of the baselines XDistillation is compared with (section IV-A, Table III).

Each loss takes a student and a teacher feature map of one layer pair, ``(B, C, *spatial)`` with one
spatial axis (1-D: sequences) or two (2-D: images), or ``(B, D)`` vectors where the method allows it, and
returns a scalar (mean over the batch). When the spatial sizes differ, the larger map is average-pooled to
the smaller one (``match_spatial``). As loss terms of the one registry (:mod:`xaipipe.losses`) ``at``,
``nst`` and ``ab`` sum the loss over the paired layers of ``extra["hints"] = (student features, teacher
features, pairs)``; ``ab`` maps the student's features through ``extra["connectors"]``.

``at`` — attention transfer (Zagoruyko & Komodakis, ICLR 2017, Eq. 2, and their reference code):
    the spatial attention map of a layer is ``Q = mean_c |A_c|^p`` (p = 2), flattened and L2-normalised;
    ``L_AT = mean_{b, j} (Q_s[b, j] / ||Q_s[b]|| - Q_t[b, j] / ||Q_t[b]||)^2`` (the paper weights it by
    ``beta/2`` with ``beta = 1000``). For ``(B, D)`` vectors the attention is ``|a_j|^p`` per unit.
    Channel counts of teacher and student may differ.

``nst`` — neuron selectivity transfer (Huang & Wang 2017, Eq. 5 with the polynomial kernel
    ``k(x, y) = (x^T y + c)^d``, ``d = 2``, ``c = 0``): every channel's map ``f_i`` (flattened over space)
    is L2-normalised; ``MMD^2 = 1/C_t^2 sum_{i,i'} k(t_i, t_i') + 1/C_s^2 sum_{j,j'} k(s_j, s_j')
    - 2/(C_t C_s) sum_{i,j} k(s_j, t_i)`` per sample, averaged over the batch. Needs a spatial axis.

``ab`` — activation-boundary transfer (Heo et al., AAAI 2019, Eq. 4-6): with a connector ``r`` (1x1
    convolution + batch norm, or a linear layer for vectors) mapping the student's pre-ReLU response to
    the teacher's channels, margin ``mu`` and ``rho(t) = 1[t > 0]``,
    ``L_AB = || rho(T) * relu(mu - r(S))^2 + (1 - rho(T)) * relu(mu + r(S))^2 ||_1`` (squared hinge on
    the activation boundary: a teacher neuron that fires should fire in the student by at least ``mu``,
    and vice versa), summed over neurons and averaged over the batch. Both maps are *pre*-ReLU.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import XaipipeError
from ...losses import LossInputs, register_term


def _pool_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if x.dim() == 3:
        return F.adaptive_avg_pool1d(x, size)
    if x.dim() == 4:
        return F.adaptive_avg_pool2d(x, size)
    raise XaipipeError(f"cannot pool a feature map of shape {tuple(x.shape)}")


def match_spatial(s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the spatially larger of two ``(B, C, *spatial)`` maps to the other's size."""
    if s.dim() != t.dim():
        raise XaipipeError(f"student and teacher features differ in rank: {tuple(s.shape)} vs {tuple(t.shape)}")
    if s.dim() <= 2 or s.shape[2:] == t.shape[2:]:
        return s, t
    target = tuple(min(a, b) for a, b in zip(s.shape[2:], t.shape[2:]))
    return _pool_to(s, target), _pool_to(t, target)


def attention_map(f: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``normalize(flatten(mean_c |f_c|^p))``; for ``(B, D)`` vectors ``normalize(|f|^p)``."""
    a = f.abs().pow(p)
    if f.dim() > 2:
        a = a.mean(1)
    return F.normalize(a.flatten(1), dim=1)


def at_loss(fs: torch.Tensor, ft: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Attention transfer between one student and one teacher layer (see the module docstring)."""
    if fs.dim() == 2 and fs.shape[1] != ft.shape[1]:
        raise XaipipeError(f"at_loss on vectors needs equal widths, got {fs.shape[1]} and {ft.shape[1]}")
    fs, ft = match_spatial(fs, ft.detach())
    return (attention_map(fs, p) - attention_map(ft, p)).pow(2).mean()


def _poly_mmd(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    def k(a, b):  # (B, Ca, N), (B, Cb, N) -> (B, Ca, Cb)
        return torch.bmm(a, b.transpose(1, 2)).pow(2)
    return k(t, t).mean((1, 2)) + k(s, s).mean((1, 2)) - 2 * k(s, t).mean((1, 2))


def nst_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Squared MMD with the polynomial kernel (d = 2, c = 0) between the normalised channel maps."""
    if fs.dim() < 3:
        raise XaipipeError("nst_loss needs feature maps with a spatial axis (B, C, L) or (B, C, H, W); "
                           "for fully connected layers use at or ab")
    fs, ft = match_spatial(fs, ft.detach())
    s = F.normalize(fs.flatten(2), dim=2)
    t = F.normalize(ft.flatten(2), dim=2)
    return _poly_mmd(s, t).mean()


def ab_loss(source: torch.Tensor, target: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Activation-boundary loss between the connector output ``source = r(S)`` and the teacher's
    pre-ReLU response ``target`` (same shape after pooling)."""
    source, target = match_spatial(source, target.detach())
    if source.shape != target.shape:
        raise XaipipeError(f"ab_loss: connector output {tuple(source.shape)} does not match the teacher's "
                           f"{tuple(target.shape)}")
    on = (target > 0).to(source.dtype)
    loss = on * F.relu(margin - source).pow(2) + (1 - on) * F.relu(margin + source).pow(2)
    return loss.flatten(1).sum(1).mean()


def _hints(inputs: LossInputs, term: str):
    return inputs.need("hints", term)


@register_term("at")
def at(inputs: LossInputs, p: float = 2.0, relu: bool = True) -> torch.Tensor:
    """Attention transfer summed over the paired layers, halved (the paper's ``beta/2``), on post-ReLU maps
    unless ``relu`` is false."""
    hs, ht, pairs = _hints(inputs, "at")
    act = F.relu if relu else (lambda v: v)
    return sum(at_loss(act(hs[i]), act(ht[j]), float(p)) for i, j in pairs) / 2.0


@register_term("nst")
def nst(inputs: LossInputs, relu: bool = True) -> torch.Tensor:
    """Neuron selectivity transfer summed over the paired layers."""
    hs, ht, pairs = _hints(inputs, "nst")
    act = F.relu if relu else (lambda v: v)
    return sum(nst_loss(act(hs[i]), act(ht[j])) for i, j in pairs)


@register_term("ab")
def ab(inputs: LossInputs, margin: float = 1.0) -> torch.Tensor:
    """Activation-boundary transfer summed over the paired layers, the student's features mapped by the
    per-pair connectors (``extra["connectors"]``)."""
    hs, ht, pairs = _hints(inputs, "ab")
    connectors = inputs.need("connectors", "ab")
    return sum(ab_loss(c(hs[i]), ht[j], float(margin)) for c, (i, j) in zip(connectors, pairs))


@register_term("weight_l2")
def weight_l2(inputs: LossInputs) -> torch.Tensor:
    """``||W||²`` of ``extra["weight"]`` (XDistillation's penalty on the fusion layer, Eq. 6)."""
    return inputs.need("weight", "weight_l2").pow(2).sum()


class Connector(nn.Module):
    """AB's ``r``: 1x1 convolution + batch norm (1-D or 2-D maps) or linear + batch norm (vectors)."""

    def __init__(self, c_student: int, c_teacher: int, dims: int = 2):
        super().__init__()
        if dims == 2:
            self.net = nn.Sequential(nn.Conv2d(c_student, c_teacher, 1, bias=False), nn.BatchNorm2d(c_teacher))
        elif dims == 1:
            self.net = nn.Sequential(nn.Conv1d(c_student, c_teacher, 1, bias=False), nn.BatchNorm1d(c_teacher))
        elif dims == 0:
            self.net = nn.Sequential(nn.Linear(c_student, c_teacher, bias=False), nn.BatchNorm1d(c_teacher))
        else:
            raise XaipipeError(f"Connector: dims must be 0 (vectors), 1 or 2, got {dims}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def pair_layers(n_student: int, n_teacher: int, layers: Sequence | None) -> list[tuple[int, int]]:
    """Which (student, teacher) hint layers are matched. ``None``: all, index by index (the counts must
    be equal); a list of ints: those indices in both; a list of pairs: explicit ``[s, t]`` pairs."""
    if layers is None:
        if n_student != n_teacher:
            raise XaipipeError(
                f"the student has {n_student} hint layers and the teacher {n_teacher}; set the method's "
                f"'layers' to a list of [student, teacher] index pairs")
        return [(i, i) for i in range(n_student)]
    pairs = []
    for item in layers:
        s, t = (item, item) if isinstance(item, int) else tuple(item)
        if not (-n_student <= s < n_student and -n_teacher <= t < n_teacher):
            raise XaipipeError(f"hint layer pair ({s}, {t}) out of range: the student has {n_student} and the "
                               f"teacher {n_teacher} hint layers")
        pairs.append((s % n_student, t % n_teacher))
    if not pairs:
        raise XaipipeError("'layers' is empty: name at least one hint layer")
    return pairs


__all__ = ["Connector", "ab", "ab_loss", "at", "at_loss", "attention_map", "match_spatial", "nst", "nst_loss", "pair_layers",
           "weight_l2"]
