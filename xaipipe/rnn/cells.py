"""Explainable-by-design recurrent cells (Chormai 2018, sections 4.2-4.4, Figures 4.3-4.6, Table 4.3).

Every cell reads the column blocks ``x_t`` of an image (:func:`xaipipe.rnn.data.split_columns`) and keeps
a recurrent input ``r_t`` (``n^(5) = 128`` ReLU units, ``r_0 = 0``; none when ``SEQ = 1``)::

    f_t     = encoder(x_t)                          (layers 1', 1'' or C1-P2; the pixels for Shallow)
    a_t     = relu(W_4 [f_t ; r_t] - softplus(b_4))  (layer 4: "input to cell", concatenation at layer 3)
    r_{t+1} = relu(W_5 a_t - softplus(b_5))          (layer 5, recurrent)
    h       = head(a_{t_last})                       (layers 4', 6: raw output, softmax for training)

Every layer computes ``h^(l) = W^T a^(l-1) - softplus(b)`` (section 4.4): the bias is constrained
non-positive through the softplus, as deep Taylor decomposition assumes (eq. 3.9), so relevance is
conserved. Initialisation: ``w ~ TruncatedNormal(0, 0.1, [-0.2, 0.2])``, ``b = ln(e^0.01 - 1)`` (the
bias starts at ``-0.01``). Activations are ReLU, hence every layer input above the pixels is ``>= 0``.

Cells and layer sizes (section 4.4, Figure 4.6)::

    shallow    layer 4 = 768                                              -> 10
    deep       1' = 512          -> [f ; r] -> 4 = 256  -> 4' = 64        -> 10
    deep_v2    1' = 512, 1'' = 256 -> [f ; r] -> 4 = 128 -> 4' = 64       -> 10
    conv_deep  C1 conv 5x5 x 24, P1 max 2x2, C2 conv 3x3 x 48, P2 max 2x2 -> [f ; r] -> 4 = 256 -> 4' = 128 -> 10

Convolutions and pooling use TensorFlow's ``SAME`` padding (stride 1 convolutions keep the size, 2 x 2
pools of an odd size round up), which reproduces every entry of Table 4.3 (tested). The recurrent layer
5 reads layer 4 (``n^(5) = 128``); the head reads the last step's layer 4.

Dropout (``p = 0.5``, section 4.3.2 / Table 4.2): on the encoder output ``a^(1)`` (between 1' and 1''
for DeepV2, as Figure 4.5 describes) and on the last step's ``a^(4)`` before the head; Shallow has only
the latter. (The thesis's public TensorFlow code additionally drops units before the recurrent layer;
the draft's text does not, and neither does this module.)
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import XaipipeError
from ..models import count_parameters, load_checkpoint, save_checkpoint
from .data import split_columns, step_width
from .published import INIT_BIAS, INIT_STD

__all__ = [
    "CELLS",
    "ConvDeepCell",
    "DeepCell",
    "DeepV2Cell",
    "RecurrentClassifier",
    "ShallowCell",
    "SoftplusBiasConv2d",
    "SoftplusBiasLinear",
    "build_cell",
    "count_parameters",
    "load_model",
    "plain_copy",
    "run_sequence",
    "save_model",
]


def inverse_softplus(y: float) -> float:
    """``b`` with ``softplus(b) = y`` (``ln(e^y - 1)``)."""
    return math.log(math.expm1(y))


# --- layers with a non-positive bias ----------------------------------------------------------------


class SoftplusBiasLinear(nn.Module):
    """Fully connected layer ``h = W a - softplus(b)`` (section 4.4): the effective bias is ``<= 0``."""

    def __init__(self, in_features: int, out_features: int, init_std: float = INIT_STD,
                 init_bias: float = INIT_BIAS):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        self.bias_raw = nn.Parameter(torch.full((self.out_features,), inverse_softplus(init_bias)))
        nn.init.trunc_normal_(self.weight, 0.0, init_std, -2 * init_std, 2 * init_std)

    def effective_bias(self) -> torch.Tensor:
        return -F.softplus(self.bias_raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.effective_bias())

    def to_plain(self) -> nn.Linear:
        """An ``nn.Linear`` with the same weight and the effective bias (for Zennit's rules)."""
        lin = nn.Linear(self.in_features, self.out_features).to(self.weight)
        with torch.no_grad():
            lin.weight.copy_(self.weight)
            lin.bias.copy_(self.effective_bias())
        return lin

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, bias = -softplus(b)"


class SoftplusBiasConv2d(nn.Module):
    """Stride-1 convolution with ``SAME`` padding and bias ``-softplus(b)`` (ConvDeep, section 4.4)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, init_std: float = INIT_STD,
                 init_bias: float = INIT_BIAS):
        super().__init__()
        if kernel_size % 2 != 1:
            raise XaipipeError(f"SAME padding needs an odd kernel size, got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), int(kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias_raw = nn.Parameter(torch.full((out_channels,), inverse_softplus(init_bias)))
        nn.init.trunc_normal_(self.weight, 0.0, init_std, -2 * init_std, 2 * init_std)

    def effective_bias(self) -> torch.Tensor:
        return -F.softplus(self.bias_raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.effective_bias(), padding=self.kernel_size // 2)

    def to_plain(self) -> nn.Conv2d:
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                         padding=self.kernel_size // 2).to(self.weight)
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            conv.bias.copy_(self.effective_bias())
        return conv

    def extra_repr(self) -> str:
        k = self.kernel_size
        return f"{self.in_channels} -> {self.out_channels}, kernel {k}x{k}, SAME, bias = -softplus(b)"


def same_max_pool() -> nn.MaxPool2d:
    """2 x 2 max pooling, stride 2, TensorFlow ``SAME`` (an odd size rounds up: 7 -> 4, 1 -> 1)."""
    return nn.MaxPool2d(2, stride=2, ceil_mode=True)


def plain_copy(module: nn.Module) -> nn.Module:
    """Evaluation copy of a (sequential) sub-network: softplus-bias layers become ``nn.Linear`` /
    ``nn.Conv2d`` with their effective bias, dropout becomes the identity, the rest is copied."""
    if isinstance(module, (SoftplusBiasLinear, SoftplusBiasConv2d)):
        return module.to_plain()
    if isinstance(module, nn.Dropout):
        return nn.Identity()
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(plain_copy(m) for m in module))
    if any(True for _ in module.parameters()):
        raise XaipipeError(f"plain_copy: unexpected layer with parameters {type(module).__name__}")
    return copy.deepcopy(module)


# --- the recurrence (one definition for training, evaluation and the unrolled explainer) ------------


def run_sequence(steps: torch.Tensor, encoders: Sequence[nn.Module], cells: Sequence[nn.Module],
                 recurrents: Sequence[nn.Module], head: nn.Module, recur: int) -> torch.Tensor:
    """Logits ``h`` of column blocks ``steps`` ``(N, T, H, w)`` (section 4.2, Figure 4.3).

    ``encoders[t]``, ``cells[t]`` (layer 4, pre-activation) and ``recurrents[t]`` (layer 5,
    pre-activation; ``T - 1`` of them) are the modules used at step ``t``: the same module ``T`` times
    for the trained model, per-step copies for the explainer (:mod:`xaipipe.rnn.lrp`).
    """
    n, t_len = steps.shape[:2]
    r = steps.new_zeros(n, recur) if recur else None
    a = None
    for t in range(t_len):
        f = encoders[t](steps[:, t, None])  # (N, 1, H, w) -> (N, features)
        a = F.relu(cells[t](torch.cat([f, r], dim=1) if recur else f))
        if recur and t < t_len - 1:
            r = F.relu(recurrents[t](a))
    return head(a)


# --- cells -------------------------------------------------------------------------------------------

CELLS: dict[str, type["RecurrentClassifier"]] = {}


def register_cell(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        CELLS[name] = cls
        return cls
    return deco


class RecurrentClassifier(nn.Module):
    """Base class: a recurrent classifier of column-split images.

    Subclasses implement :meth:`build` returning ``(encoder, n_features, hidden, head)``; ``encoder``
    maps ``(N, 1, H, w)`` to ``(N, n_features)`` and ``head`` maps the last ``a^(4)`` (``hidden``
    units) to the logits. :attr:`pixel_layer` names the layer that sees the pixels (deep Taylor's
    z^beta rule).
    """

    name = ""

    def __init__(self, seq: int, n_classes: int = 10, height: int = 28, width: int = 28, recur: int = 128,
                 dropout: float = 0.5, init_std: float = INIT_STD, init_bias: float = INIT_BIAS):
        super().__init__()
        self.seq, self.n_classes, self.height, self.width = int(seq), int(n_classes), int(height), int(width)
        self.step_width = step_width(self.width, self.seq)
        self.recur = int(recur) if self.seq > 1 else 0  # n^(5) = 0 when SEQ = 1 (section 4.4)
        self.dropout_p = float(dropout)
        self.init_std, self.init_bias = float(init_std), float(init_bias)
        self._recur_arg = int(recur)
        encoder, n_features, hidden, head = self.build()
        self.encoder = encoder
        self.n_features, self.hidden = int(n_features), int(hidden)
        self.cell = self.linear(self.n_features + self.recur, self.hidden)
        self.recurrent = self.linear(self.hidden, self.recur) if self.recur else None
        self.head = head

    # helpers for subclasses
    def linear(self, n_in: int, n_out: int) -> SoftplusBiasLinear:
        return SoftplusBiasLinear(n_in, n_out, self.init_std, self.init_bias)

    def conv(self, c_in: int, c_out: int, k: int) -> SoftplusBiasConv2d:
        return SoftplusBiasConv2d(c_in, c_out, k, self.init_std, self.init_bias)

    def drop(self) -> nn.Module:
        return nn.Dropout(self.dropout_p) if self.dropout_p > 0 else nn.Identity()

    @property
    def n_pixels(self) -> int:
        """Pixels per step, ``28 * 28 / SEQ`` (Table 4.1)."""
        return self.height * self.step_width

    def build(self) -> tuple[nn.Module, int, int, nn.Module]:
        raise NotImplementedError

    @property
    def pixel_layer(self) -> str:
        """Name of the module whose input is the pixels: the first layer of the encoder, or
        ``"cell"`` when the encoder has none (Shallow: pixels and ``r_t`` share layer 4)."""
        for name, m in self.encoder.named_children():
            if isinstance(m, (SoftplusBiasLinear, SoftplusBiasConv2d)):
                return f"encoder.{name}"
        return "cell"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``(N, H, W)`` images (pixels already scaled)."""
        steps = split_columns(images, self.seq)
        return run_sequence(steps, [self.encoder] * self.seq, [self.cell] * self.seq,
                            [self.recurrent] * max(self.seq - 1, 0), self.head, self.recur)

    def config(self) -> dict:
        """Constructor arguments (saved in checkpoints)."""
        return {"seq": self.seq, "n_classes": self.n_classes, "height": self.height, "width": self.width,
                "recur": self._recur_arg, "dropout": self.dropout_p, "init_std": self.init_std,
                "init_bias": self.init_bias}

    def layer_sizes(self) -> dict:
        return {"pixels_per_step": self.n_pixels, "features": self.n_features, "hidden": self.hidden,
                "recur": self.recur}


@register_cell("shallow")
class ShallowCell(RecurrentClassifier):
    """Shallow cell (Figure 4.4a): ``[x_t ; r_t]`` -> layer 4 (768) -> ``r_{t+1}`` / output."""

    def build(self):
        head = nn.Sequential(self.drop(), self.linear(768, self.n_classes))
        return nn.Sequential(nn.Flatten()), self.n_pixels, 768, head


@register_cell("deep")
class DeepCell(RecurrentClassifier):
    """Deep cell (Figure 4.4b): ``x_t`` -> 1' (512) ; ``[a^(1) ; r_t]`` -> 4 (256) -> 4' (64) -> output."""

    def build(self):
        encoder = nn.Sequential(nn.Flatten(), self.linear(self.n_pixels, 512), nn.ReLU(), self.drop())
        head = nn.Sequential(self.drop(), self.linear(256, 64), nn.ReLU(), self.linear(64, self.n_classes))
        return encoder, 512, 256, head


@register_cell("deep_v2")
class DeepV2Cell(RecurrentClassifier):
    """DeepV2 cell (Figure 4.5): 1' (512) -> dropout -> 1'' (256) ; 4 (128) -> 4' (64) -> output."""

    def build(self):
        encoder = nn.Sequential(nn.Flatten(), self.linear(self.n_pixels, 512), nn.ReLU(), self.drop(),
                                self.linear(512, 256), nn.ReLU())
        head = nn.Sequential(self.drop(), self.linear(128, 64), nn.ReLU(), self.linear(64, self.n_classes))
        return encoder, 256, 128, head


@register_cell("conv_deep")
class ConvDeepCell(RecurrentClassifier):
    """ConvDeep cell (Figure 4.5): C1 (5x5, 24) -> P1 (2x2) -> C2 (3x3, 48) -> P2 (2x2) ; 4 (256) ->
    4' (128) -> output."""

    def build(self):
        encoder = nn.Sequential(self.conv(1, 24, 5), nn.ReLU(), same_max_pool(),
                                self.conv(24, 48, 3), nn.ReLU(), same_max_pool(), nn.Flatten(), self.drop())
        with torch.no_grad():
            n_features = encoder.eval()(torch.zeros(1, 1, self.height, self.step_width)).shape[1]
        encoder.train()
        head = nn.Sequential(self.drop(), self.linear(256, 128), nn.ReLU(), self.linear(128, self.n_classes))
        return encoder, n_features, 256, head


def build_cell(name: str, seq: int, **kwargs) -> RecurrentClassifier:
    try:
        cls = CELLS[name]
    except KeyError:
        raise XaipipeError(f"unknown RNN cell {name!r}; known: {sorted(CELLS)}") from None
    return cls(seq=seq, **kwargs)




# --- checkpoints -------------------------------------------------------------------------------------


def save_model(path: str | Path, model: RecurrentClassifier, meta: dict | None = None) -> None:
    """:func:`xaipipe.models.save_checkpoint` with arch ``"rnn/<cell>"``."""
    save_checkpoint(path, f"rnn/{model.name}", model.config(), model, meta)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[RecurrentClassifier, dict]:
    """A checkpoint of :func:`save_model`, in eval mode, and its ``meta``."""
    return load_checkpoint(path, map_location, expect="rnn/", kind="RNN", rule="the rnn_train rule")
