"""Model registry and checkpoints.

A checkpoint (``model.pt``) is a dict ``{"arch", "kwargs", "state_dict", "meta"}``; text models also
carry their vocabulary and tokenizer settings in ``meta`` so that a checkpoint alone can explain raw
text. New architectures: add a module and one line to :data:`MODELS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import XaipipeError
from ..io import atomic_path
from .mlp import MLP
from .text_cnn import TextCNN

MODELS: dict[str, type[nn.Module]] = {"text_cnn": TextCNN, "mlp": MLP}
#: architectures of other stages, imported only when a checkpoint needs them ("module:Class")
LAZY_MODELS: dict[str, str] = {"places_student": "xaipipe.distill.places:PlacesStudent"}


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    cls = MODELS.get(arch)
    if cls is None and arch in LAZY_MODELS:
        import importlib

        module, name = LAZY_MODELS[arch].split(":")
        cls = getattr(importlib.import_module(module), name)
    if cls is None:
        raise XaipipeError(f"unknown architecture {arch!r}; known: {sorted(MODELS) + sorted(LAZY_MODELS)}")
    return cls(**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save_checkpoint(path: str | Path, arch: str, kwargs: dict, model: nn.Module, meta: dict | None = None) -> None:
    kwargs = {k: v for k, v in kwargs.items() if k != "embedding"}
    if arch == "text_cnn":
        kwargs["embedding"] = int(model.embedding.shape[0])
        kwargs["embedding_dim"] = int(model.embedding.shape[1])
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"arch": arch, "kwargs": kwargs, "state_dict": state, "meta": meta or {}}, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    path = Path(path)
    if not path.is_file():
        raise XaipipeError(f"model file {path} not found: train it first (snakemake {path}) or fix the path")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
        model = build_model(ckpt["arch"], **ckpt["kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except XaipipeError:
        raise
    except Exception as exc:  # corrupt or foreign file
        raise XaipipeError(f"{path} is not a readable xaipipe checkpoint ({exc}); delete it and rerun "
                           f"the training rule") from exc
    model.eval()
    return model, ckpt.get("meta", {})


__all__ = ["MODELS", "MLP", "TextCNN", "build_model", "count_parameters", "load_checkpoint", "save_checkpoint"]
