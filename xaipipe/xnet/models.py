"""XNet: a backbone, an explainable fully connected layer, the X-layer and the output layer.

XNet paper (David & Liu, 002_8ecab4f1e6369166.txt), section 2.1: "convolutional layers from ResNet-18;
after the global average pooling layer, we include the explainable fully connected layer with 3 hidden
units, then the final softmax output layer". Section 2.2: dropping neuron *j* is done by an *X-layer*, "a
simple fully connected layer with weights set constant to be the identity I_k. Given a certain neuron j
to be dropped, we simply zero out the j-th component on its diagonal", so that no gradient flows to or
from neuron *j*.

::

    x -> backbone -> features (F) -> fc: Linear(F, k) -> activation -> h (k explainable neurons)
      -> X-layer: h @ diag(d), d = 1 except d_j = 0 when neuron j is dropped -> out: Linear(k, C) -> logits

``XLayer.drop_each`` applies all k one-neuron drops at once (a ``(k, B, k)`` tensor), which is what makes
the drop-loss of every neuron one batched matrix product (:mod:`.droploss`). The activation after
``fc`` (:data:`ACTIVATIONS`) is a ReLU by default (the paper does not name one; non-negative activations
also make the paper's Figure 2 normalisation, activation sums divided by their total, well defined).
``sigmoid`` cannot die: with only k units, inputs of small magnitude (TF-IDF rows) can drive every ReLU
of the layer to zero within the first epoch, which leaves nothing to drop.

Backbones (registry :data:`BACKBONES`): ``mlp`` (flattened input, ReLU hidden layers: MNIST pixels or
20NG TF-IDF vectors), ``small_cnn`` (three convolutions and global average pooling, a small stand-in for
ResNet-18 on MNIST) and ``resnet18`` (torchvision's ResNet-18 up to the global average pooling, the
paper's CelebA backbone; ``pretrained_weights`` loads a local torchvision state dict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import XaipipeError
from ..registry import registrar
from ..models import load_checkpoint, save_checkpoint

BACKBONES: dict[str, Callable[..., tuple[nn.Module, int]]] = {}


register_backbone = registrar(BACKBONES, "XNet backbone")


@register_backbone("mlp")
def mlp_backbone(in_shape: tuple[int, ...], hidden: list[int] | tuple[int, ...] = (256,), **_: Any
                 ) -> tuple[nn.Module, int]:
    """Flatten, then ``Linear -> ReLU`` per entry of ``hidden``; returns the module and its output width."""
    width = 1
    for s in in_shape:
        width *= int(s)
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    return nn.Sequential(*layers), width


@register_backbone("small_cnn")
def small_cnn_backbone(in_shape: tuple[int, ...], channels: int = 16, **_: Any) -> tuple[nn.Module, int]:
    """Conv(3x3, c) -> ReLU -> MaxPool -> Conv(2c) -> ReLU -> MaxPool -> Conv(4c) -> ReLU -> global average
    pool. Grey images ``(H, W)`` get a channel axis; ``(C, H, W)`` are used as they are."""
    c_in = 1 if len(in_shape) == 2 else int(in_shape[0])
    c = int(channels)
    layers: list[nn.Module] = []
    if len(in_shape) == 2:
        layers.append(nn.Unflatten(1, (1, int(in_shape[0]))))
    layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 4 * c


@register_backbone("resnet18")
def resnet18_backbone(in_shape: tuple[int, ...], pretrained_weights: str | None = None, **_: Any
                      ) -> tuple[nn.Module, int]:
    """torchvision ResNet-18 without its classifier (ends with the global average pooling, 512 features).

    ``pretrained_weights``: a local file with a torchvision ResNet-18 ``state_dict`` (for example
    ``resnet18-f37072fd.pth``); its ``fc.*`` entries are ignored. ``None``: random initialisation (the
    paper does not say whether it started from ImageNet weights)."""
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    if pretrained_weights:
        path = Path(pretrained_weights)
        if not path.is_file():
            raise XaipipeError(f"xnet: pretrained_weights file {path} not found; put a torchvision ResNet-18 "
                               f"state dict there or set pretrained_weights: null")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise XaipipeError(f"xnet: {path} is not a ResNet-18 state dict (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]})")
    net.fc = nn.Identity()
    return net, 512


# activation after the explainable layer (the paper does not name one)
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "none": nn.Identity}


class XLayer(nn.Module):
    """The paper's X-layer: identity weights ``I_k`` whose j-th diagonal entry is zeroed to drop neuron j.

    ``forward(h, drop=None)`` is ``h @ diag(d)``; ``drop_each(h)`` stacks all k one-neuron drops:
    ``out[i] = h @ (I_k with entry (i, i) = 0)``. Multiplying by the constant 0 means no gradient reaches
    neuron j through the dropped path (section 2.2)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = int(k)
        self.register_buffer("masks", 1.0 - torch.eye(self.k))  # row i: all ones except position i

    def forward(self, h: torch.Tensor, drop: int | None = None) -> torch.Tensor:
        if drop is None:
            return h
        return h * self.masks[int(drop)]

    def drop_each(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, k) -> (k, B, k)``: row i of the result is ``h`` with neuron i dropped."""
        return h.unsqueeze(0) * self.masks.to(h.dtype).unsqueeze(1)


class XNet(nn.Module):
    """Backbone -> explainable layer of ``k`` neurons -> X-layer -> output layer (see module docstring)."""

    def __init__(self, in_shape: tuple[int, ...] | list[int], n_neurons: int, n_classes: int,
                 backbone: str = "mlp", activation: str = "relu", **backbone_kwargs: Any):
        super().__init__()
        if backbone not in BACKBONES:
            raise XaipipeError(f"unknown XNet backbone {backbone!r}; known: {sorted(BACKBONES)}")
        if activation not in ACTIVATIONS:
            raise XaipipeError(f"unknown XNet activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
        self.backbone, width = BACKBONES[backbone](tuple(int(s) for s in in_shape), **backbone_kwargs)
        self.fc = nn.Linear(width, int(n_neurons))
        self.act: nn.Module = ACTIVATIONS[activation]()
        self.xlayer = XLayer(int(n_neurons))
        self.out = nn.Linear(int(n_neurons), int(n_classes))
        self.n_neurons, self.n_classes = int(n_neurons), int(n_classes)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Activations ``h`` of the k explainable neurons, ``(B, k)``."""
        return self.act(self.fc(self.backbone(x)))

    def head(self, h: torch.Tensor, drop: int | None = None) -> torch.Tensor:
        """Logits from explainable activations, optionally with neuron ``drop`` zeroed by the X-layer."""
        return self.out(self.xlayer(h, drop))

    def head_drop_each(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of all k one-neuron drops at once, ``(k, B, C)``."""
        return self.out(self.xlayer.drop_each(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x))


def xnet_from_kwargs(**kwargs) -> XNet:
    """An :class:`XNet` from a checkpoint's kwargs (the backbone's pretrained weights are in its state)."""
    kwargs.pop("pretrained_weights", None)
    return XNet(**kwargs)


def save_xnet(path: str | Path, kwargs: dict, model: XNet, meta: dict | None = None) -> None:
    """:func:`xaipipe.models.save_checkpoint` with arch ``"xnet"``."""
    save_checkpoint(path, "xnet", kwargs, model, meta)


def load_xnet(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[XNet, dict]:
    """Rebuild an :class:`XNet` from :func:`save_xnet`'s file; returns the model (eval mode) and meta."""
    return load_checkpoint(path, map_location, expect="xnet", kind="XNet", rule="the xnet_train rule")
