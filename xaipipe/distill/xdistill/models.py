"""XDistillation networks (Alharbi, Vu & Thai 2021, ``shared/papers/004_fb154efd276d1126.txt``).

* **LeNet-5** (section IV-A, [28]): the MNIST teacher. ``conv(1->6, 5x5, pad 2) - pool - conv(6->16, 5x5)
  - pool - fc 400-120-84-10`` = 61,706 parameters (Table II prints 61,701).
* **Net** (the "smaller LeNet5" student): the same skeleton, ``conv(1->6) - pool - conv(6->12) - pool -
  fc 300-20-10`` = 8,198 parameters. Table II gives 8,297 but not the layers; the widths are ours and
  configurable (``conv``, ``fc``). Both keep the teacher's spatial grid (28x28, 10x10) so that attention
  maps and selectivity kernels of teacher and student line up.
* **VGG** (Simonyan & Zisserman [22], the CIFAR variant with batch normalisation and one linear layer on
  the 512 pooled features): ``vgg16`` = 14,728,266 and ``vgg11`` = 9,231,114 parameters exactly as Tables
  II/III. ``vgg7`` (6 conv + 1 linear) is not specified in the paper; ours is
  ``64-M-128-M-256-256-M-256-M-512-M`` = 2,739,210 parameters (paper: 2,781,386).
* **Convolutional autoencoders** (Table I, section III-A2, Eq. 1-2), tanh activations: ``small`` =
  ``Conv(1->16, 3, pad 1) - MaxPool 2 - Conv(16->4, 3, pad 1) - MaxPool 2 - ConvT(4->16, 2, stride 2) -
  ConvT(16->1, 2, stride 2)`` = **1,077** parameters, exactly Table I's Small_CAE. ``large`` = four
  ``Conv(k 4, stride 2, pad 1)`` and four ``ConvT(k 4, stride 2, pad 1)``; Table I gives the layers and
  198,796 parameters but not the widths: ours ``3-12-24-48-96`` mirrored to one output channel =
  194,569 parameters.
* :class:`FusedStudent` (section III-B, Figure 2): the frozen CAE maps an image to an approximated
  explanation; its (flattened) output is concatenated with the student CNN's penultimate features and fed
  to one linear *concatenation layer* whose weight ``c`` carries the feature-reduction penalty of Eq. 6.

Every classifier exposes ``forward_features(x) -> (features, hints)`` (penultimate vector and the
pre-ReLU output of the last convolution of each stage, for AT/NST/AB), a final linear ``head`` and
``cam_layer`` (the module whose output Grad-CAM uses). Inputs are images scaled to [0, 1]; VGG normalises
them inside (``mean``/``std`` buffers), so explainers and superpixels work on the raw image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ...errors import UnsafeFileError, XaipipeError
from ...io import load_torch, one_line, plain, save_torch
from ...models import count_parameters  # noqa: F401  (re-exported: stage.py and the tests count through M)

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

# ----------------------------------------------------------------------------------------------------
# classifiers


class LeNet(nn.Module):
    """LeNet-style CNN: ``len(conv)`` stages of ``Conv(kernel) - ReLU - MaxPool 2`` (the first padded
    to keep the input size), then fully connected ``fc`` layers with ReLU and a linear ``head``."""

    def __init__(self, in_channels: int = 1, conv: Sequence[int] = (6, 16), fc: Sequence[int] = (120, 84),
                 n_classes: int = 10, kernel_size: int = 5, image_size: int = 28):
        super().__init__()
        if not conv:
            raise XaipipeError("LeNet: 'conv' needs at least one stage width")
        self.convs = nn.ModuleList()
        self.acts = nn.ModuleList()
        size, c_in = image_size, in_channels
        for i, c in enumerate(conv):
            pad = kernel_size // 2 if i == 0 else 0
            self.convs.append(nn.Conv2d(c_in, int(c), kernel_size, padding=pad))
            self.acts.append(nn.ReLU())
            size = (size + 2 * pad - kernel_size + 1) // 2
            c_in = int(c)
        if size < 1:
            raise XaipipeError(f"LeNet: {len(conv)} stages of kernel {kernel_size} do not fit a "
                               f"{image_size}x{image_size} image; use fewer stages or a smaller kernel")
        self.pool = nn.MaxPool2d(2)
        width = c_in * size * size
        layers: list[nn.Module] = []
        for h in fc:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        self.fc = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)
        self.feature_dim = width
        self.hint_channels = [int(c) for c in conv]
        self.n_classes = n_classes

    @property
    def cam_layer(self) -> nn.Module:
        return self.acts[-1]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hints = []
        for conv, act in zip(self.convs, self.acts):
            z = conv(x)
            hints.append(z)
            x = self.pool(act(z))
        return self.fc(torch.flatten(x, 1)), hints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[0])


VGG_CFGS: dict[str, list] = {
    "vgg7": [64, "M", 128, "M", 256, 256, "M", 256, "M", 512, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """CIFAR VGG: ``3x3 conv - BN - ReLU`` blocks, ``"M"`` = 2x2 max-pool, global average pool, one
    linear layer. ``cfg`` is a list of widths and ``"M"``; stages end at each ``"M"``."""

    def __init__(self, cfg: Sequence[int | str], in_channels: int = 3, n_classes: int = 10,
                 batch_norm: bool = True, mean: Sequence[float] | None = CIFAR_MEAN,
                 std: Sequence[float] | None = CIFAR_STD):
        super().__init__()
        cfg = list(cfg)
        if not any(v != "M" for v in cfg):
            raise XaipipeError("VGG: cfg needs at least one convolution width")
        if cfg[-1] != "M":
            cfg.append("M")
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        else:
            self.mean = self.std = None
        self.stages = nn.ModuleList()
        self.stage_acts = nn.ModuleList()  # the last ReLU of each stage (hint = its input)
        c_in, block = in_channels, []
        self.hint_channels = []
        for v in cfg:
            if v == "M":
                if not block:
                    if not len(self.stages):
                        raise XaipipeError("VGG: cfg must not start with 'M'")
                    # an extra pool without convolutions ("M", "M"): after the previous stage's pool
                    self.stage_acts[-1].append(nn.MaxPool2d(2))
                    continue
                act = block.pop()
                self.stages.append(nn.Sequential(*block))
                self.stage_acts.append(nn.Sequential(act, nn.MaxPool2d(2)))
                self.hint_channels.append(c_in)
                block = []
                continue
            block += [nn.Conv2d(c_in, int(v), 3, padding=1)]
            if batch_norm:
                block.append(nn.BatchNorm2d(int(v)))
            block.append(nn.ReLU())
            c_in = int(v)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, n_classes)
        self.feature_dim = c_in
        self.n_classes = n_classes

    @property
    def cam_layer(self) -> nn.Module:
        return self.stage_acts[-1][0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        hints = []
        for stage, act in zip(self.stages, self.stage_acts):
            z = stage(x)
            hints.append(z)  # pre-ReLU map of the stage's last convolution (after batch norm)
            x = act(z)
        return torch.flatten(self.gap(x), 1), hints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[0])


# ----------------------------------------------------------------------------------------------------
# convolutional autoencoders (Table I)


def _act(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    raise XaipipeError(f"CAE activation {name!r} unknown; use tanh (the paper's) or relu")


class SmallCAE(nn.Module):
    """Table I, Small_CAE: two ``Conv 3x3 (pad 1) - act - MaxPool 2`` and two ``ConvT 2x2 (stride 2)``;
    tanh output (Eq. 2). With the default widths (16, 4): 1,077 parameters. Input sides divisible by 4."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths: Sequence[int] = (16, 4),
                 activation: str = "tanh"):
        super().__init__()
        if len(widths) != 2:
            raise XaipipeError(f"small CAE: 'widths' needs 2 values (Table I), got {list(widths)}")
        a, b = (int(w) for w in widths)
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, a, 3, padding=1), _act(activation), nn.MaxPool2d(2),
                                     nn.Conv2d(a, b, 3, padding=1), _act(activation), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(b, a, 2, stride=2), _act(activation),
                                     nn.ConvTranspose2d(a, out_channels, 2, stride=2), nn.Tanh())
        self.factor = 4

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class LargeCAE(nn.Module):
    """Table I, Large_CAE: four ``Conv 4x4 (stride 2, pad 1) - act`` and four ``ConvT 4x4 (stride 2, pad
    1)`` mirrored; tanh output. Input sides divisible by 16 (32x32 CIFAR)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, widths: Sequence[int] = (12, 24, 48, 96),
                 activation: str = "tanh"):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) != 4:
            raise XaipipeError(f"large CAE: 'widths' needs 4 values (Table I), got {widths}")
        enc: list[nn.Module] = []
        c = in_channels
        for w in widths:
            enc += [nn.Conv2d(c, w, 4, stride=2, padding=1), _act(activation)]
            c = w
        dec: list[nn.Module] = []
        for w in list(reversed(widths[:-1])) + [out_channels]:
            dec += [nn.ConvTranspose2d(c, w, 4, stride=2, padding=1), _act(activation)]
            c = w
        dec[-1] = nn.Tanh()
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.factor = 16

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


CAES: dict[str, type[nn.Module]] = {"small": SmallCAE, "large": LargeCAE}

# Table I
PUBLISHED_CAE_PARAMETERS = {"small": 1077, "large": 198796}


def build_cae(size: str, **kwargs: Any) -> nn.Module:
    try:
        cls = CAES[size]
    except KeyError:
        raise XaipipeError(f"unknown CAE size {size!r}; known: {', '.join(sorted(CAES))}") from None
    return cls(**{k: v for k, v in kwargs.items() if v is not None})


def check_cae_input(cae: nn.Module, height: int, width: int) -> None:
    f = getattr(cae, "factor", 1)
    if height % f or width % f:
        raise XaipipeError(f"the {type(cae).__name__} halves the image {f.bit_length() - 1} times, so image "
                           f"sides must be divisible by {f}; got {height}x{width}. Use cae.size: small for "
                           f"28x28 MNIST, large for 32x32 CIFAR-10")


# ----------------------------------------------------------------------------------------------------
# the XDistillation student


class FusedStudent(nn.Module):
    """Section III-B: ``logits = c · [flatten(CAE(x)) ; CNN_features(x)] + b``.

    ``cae_features="output"`` (default) concatenates the CAE's approximated explanation (Eq. 2),
    ``"latent"`` its encoder output (Eq. 1). The CAE is frozen (``requires_grad=False``, kept in eval
    mode): it is trained once, before, on the teacher's explanations. ``head`` is the concatenation
    layer; its first ``cae_dim`` weight columns act on CAE features, the rest on CNN features.
    """

    def __init__(self, cnn: nn.Module, cae: nn.Module, cae_dim: int, cae_features: str = "output",
                 n_classes: int = 10):
        super().__init__()
        if cae_features not in ("output", "latent"):
            raise XaipipeError(f"cae_features must be output or latent, got {cae_features!r}")
        self.cnn = cnn
        self.cae = cae
        for p in self.cae.parameters():
            p.requires_grad_(False)
        self.cae_features = cae_features
        self.cae_dim = int(cae_dim)
        self.cnn.head = nn.Identity()  # the CNN's own classifier is replaced by the concatenation layer
        self.head = nn.Linear(self.cae_dim + cnn.feature_dim, n_classes)
        self.feature_dim = self.cae_dim + cnn.feature_dim
        self.hint_channels = cnn.hint_channels
        self.n_classes = n_classes

    def train(self, mode: bool = True) -> "FusedStudent":
        super().train(mode)
        self.cae.eval()  # frozen: never in training mode
        return self

    @property
    def cam_layer(self) -> nn.Module:
        return self.cnn.cam_layer

    def explanation(self, x: torch.Tensor) -> torch.Tensor:
        """The CAE's approximated explanation ``e_CAE`` (Eq. 2)."""
        return self.cae(x)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        e = self.cae(x) if self.cae_features == "output" else self.cae.encode(x)
        f, hints = self.cnn.forward_features(x)
        return torch.cat([torch.flatten(e, 1), f], dim=1), hints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[0])

    def concat_weight(self, part: str = "cnn") -> torch.Tensor:
        """``c`` of Eq. 6: the concatenation layer's weight columns on the CNN features (``cnn``), on the
        CAE features (``cae``) or all of it (``all``)."""
        w = self.head.weight
        if part == "cnn":
            return w[:, self.cae_dim:]
        if part == "cae":
            return w[:, :self.cae_dim]
        if part == "all":
            return w
        raise XaipipeError(f"penalty_on must be cnn, cae or all, got {part!r}")


# ----------------------------------------------------------------------------------------------------
# registry, building and checkpoints


def _lenet(in_channels: int = 1, n_classes: int = 10, image_size: int = 28, **kw: Any) -> LeNet:
    return LeNet(in_channels=in_channels, n_classes=n_classes, image_size=image_size, **kw)


def _net(in_channels: int = 1, n_classes: int = 10, image_size: int = 28, **kw: Any) -> LeNet:
    kw.setdefault("conv", (6, 12))
    kw.setdefault("fc", (20,))
    return LeNet(in_channels=in_channels, n_classes=n_classes, image_size=image_size, **kw)


def _vgg(name: str | None) -> Callable[..., VGG]:
    def build(in_channels: int = 3, n_classes: int = 10, image_size: int = 32, cfg: Sequence | None = None,
              **kw: Any) -> VGG:
        if cfg is None:
            if name is None:
                raise XaipipeError("arch 'vgg' needs arch_kwargs.cfg (a list of widths and 'M')")
            cfg = VGG_CFGS[name]
        if in_channels != 3:
            kw.setdefault("mean", None)
            kw.setdefault("std", None)
        return VGG(cfg, in_channels=in_channels, n_classes=n_classes, **kw)
    return build


ARCHS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": _lenet, "net": _net, "vgg": _vgg(None), "vgg7": _vgg("vgg7"), "vgg11": _vgg("vgg11"),
    "vgg16": _vgg("vgg16"),
}


def build_classifier(arch: str, **kwargs: Any) -> nn.Module:
    """A teacher or student from :data:`ARCHS` (``in_channels``, ``n_classes``, ``image_size`` plus the
    architecture's own keywords, e.g. ``conv``/``fc`` for LeNet or ``cfg`` for VGG)."""
    try:
        fn = ARCHS[arch]
    except KeyError:
        raise XaipipeError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}") from None
    try:
        return fn(**kwargs)
    except TypeError as exc:
        raise XaipipeError(f"architecture {arch!r}: bad keyword ({exc}); check arch_kwargs in the config") from exc


def cae_dim(cae: nn.Module, in_channels: int, image_size: int, features: str) -> int:
    with torch.no_grad():
        x = torch.zeros(1, in_channels, image_size, image_size)
        out = cae(x) if features == "output" else cae.encode(x)
    return int(out[0].numel())


def build_fused(student: dict, cae: dict, cae_features: str, n_classes: int, in_channels: int,
                image_size: int) -> FusedStudent:
    cnn = build_classifier(student["arch"], in_channels=in_channels, n_classes=n_classes, image_size=image_size,
                           **student.get("kwargs", {}))
    ae = build_cae(cae["size"], in_channels=in_channels, **cae.get("kwargs", {}))
    check_cae_input(ae, image_size, image_size)
    return FusedStudent(cnn, ae, cae_dim(ae, in_channels, image_size, cae_features), cae_features, n_classes)




def build_from_spec(spec: dict) -> nn.Module:
    kind = spec["kind"]
    if kind == "classifier":
        return build_classifier(spec["arch"], **spec["kwargs"])
    if kind == "cae":
        return build_cae(spec["size"], **spec["kwargs"])
    if kind == "fused":
        return build_fused(**spec["kwargs"])
    raise XaipipeError(f"unknown model kind {kind!r} in checkpoint")


def save_model(path: str | Path, spec: dict, model: nn.Module, meta: dict | None = None) -> None:
    """``{"spec", "state_dict", "meta"}``; ``spec`` rebuilds the module (see :func:`build_from_spec`)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"spec": plain(spec, "spec"), "state_dict": state, "meta": plain(meta or {}, "meta")}, path)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    path = Path(path)
    if not path.is_file():
        raise XaipipeError(f"model file {path} not found: run its rule first (snakemake {path})")
    try:
        ckpt = load_torch(path, map_location)
        model = build_from_spec(ckpt["spec"])
        model.load_state_dict(ckpt["state_dict"])
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{exc}. Never load model files from untrusted sources; if an older xaipipe "
                              f"wrote it, delete it and rerun its rule") from exc
    except XaipipeError:
        raise
    except Exception as exc:
        raise XaipipeError(f"{path} is not a readable XDistillation checkpoint ({one_line(exc)}); delete it and "
                           f"rerun its rule") from exc
    model.to(map_location).eval()
    return model, {**ckpt.get("meta", {}), "spec": ckpt["spec"]}
