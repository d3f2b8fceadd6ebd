"""Model registry and checkpoints.

A checkpoint (``model.pt``) is a dict ``{"arch", "kwargs", "state_dict", "meta"}``; text models also
carry their vocabulary and tokenizer settings in ``meta`` so that a checkpoint alone can explain raw
text. It holds only tensors and plain data and is read with the safe loader
(:func:`xaipipe.io.load_torch`): a file that would need anything else unpickled (which can run code) is
refused, and so is one whose weights are NaN or infinite. New architectures: add a module and one line
to :data:`MODELS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UnsafeFileError, XaipipeError, check_finite
from ..io import load_torch, one_line, plain, save_torch
from .mlp import MLP
from .text_cnn import TextCNN

MODELS: dict[str, type[nn.Module]] = {"text_cnn": TextCNN, "mlp": MLP}
#: architectures of other stages, imported only when a checkpoint needs them ("module:Class")
#: architectures of stage packages, imported on first use: ``arch -> "module:factory"``. A key ending in
#: "/" names a family: ``"rnn/conv_deep"`` calls the family's factory as ``factory("conv_deep", **kwargs)``.
LAZY_MODELS: dict[str, str] = {
    "places_student": "xaipipe.distill.places:PlacesStudent",
    "xnet": "xaipipe.xnet.models:xnet_from_kwargs",
    "rnn/": "xaipipe.rnn.cells:build_cell",
}


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    cls = MODELS.get(arch)
    args: tuple = ()
    family = arch.split("/", 1)[0] + "/" if "/" in arch else None
    lazy = LAZY_MODELS.get(arch) or (LAZY_MODELS.get(family) if family else None)
    if cls is None and lazy:
        import importlib

        module, name = lazy.split(":")
        cls = getattr(importlib.import_module(module), name)
        if family and arch not in LAZY_MODELS:
            args = (arch.split("/", 1)[1],)
    if cls is None:
        raise XaipipeError(f"unknown architecture {arch!r}; known: {sorted(MODELS) + sorted(LAZY_MODELS)}")
    return cls(*args, **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save_checkpoint(path: str | Path, arch: str, kwargs: dict, model: nn.Module, meta: dict | None = None) -> None:
    kwargs = {k: v for k, v in kwargs.items() if k != "embedding"}
    if arch == "text_cnn":
        kwargs["embedding"] = int(model.embedding.shape[0])
        kwargs["embedding_dim"] = int(model.embedding.shape[1])
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"arch": arch, "kwargs": plain(kwargs, "kwargs"), "state_dict": state,
                "meta": plain(meta or {}, "meta")}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, expect: str | None = None,
                    kind: str = "xaipipe", rule: str = "the training rule") -> tuple[nn.Module, dict]:
    """A model written by :func:`save_checkpoint`, in eval mode, and its ``meta``.

    ``expect``: the architecture (or family prefix such as ``"rnn/"``) the caller needs; ``kind`` and
    ``rule`` name the model and the rule that writes it in error messages."""
    path = Path(path)
    what = "model" if kind == "xaipipe" else f"{kind} model"
    if not path.is_file():
        raise XaipipeError(f"{what} file {path} not found: train it first (snakemake {path}) or fix the path")
    try:
        ckpt = load_torch(path, map_location)
        arch = ckpt["arch"]
        if expect is not None and not (arch == expect or (expect.endswith("/") and str(arch).startswith(expect))):
            raise ValueError(f"it holds a {arch!r} model, not {expect!r}")
        model = build_model(arch, **ckpt["kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except UnsafeFileError as exc:  # crafted, or written by a version that stored other objects
        raise UnsafeFileError(f"{exc}. Never load model files from untrusted sources; if an older xaipipe "
                              f"wrote it, delete it and rerun {rule}") from exc
    except Exception as exc:  # corrupt or foreign file
        raise XaipipeError(f"{path} is not a readable {kind} checkpoint ({one_line(exc)}); delete it and rerun "
                           f"{rule}") from exc
    for name, tensor in ckpt["state_dict"].items():  # a model trained on NaN would "predict" NaN
        check_finite(tensor, f"the weights {name!r} of {path}", f"The model was trained on non-finite inputs or "
                     f"diverged: delete it and rerun {rule} to retrain it")
    model.eval()
    return model, ckpt.get("meta", {})


__all__ = ["MODELS", "MLP", "TextCNN", "build_model", "count_parameters", "load_checkpoint", "save_checkpoint"]
