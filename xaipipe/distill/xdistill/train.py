"""Training loops of the XDistillation stage: classifiers (teachers and students, any
:class:`~.methods.StudentMethod` objective) and the convolutional autoencoder (L1 loss, Eq. 4).

Recipes of section IV-A: the MNIST LeNet-5 teacher with the MSE loss (``loss: mse``: squared error
between the softmax output and the one-hot label) and Adam 1e-3; the CIFAR-10 VGG16 teacher with SGD
(momentum 0.9), batch 128, learning rate 0.1 / 0.01 / 0.001 from epochs 0 / 150 / 250 (``schedule: step``,
``milestones``, ``gamma``) and random 32x32 crops of the 4-pixel padded image plus horizontal flips
(``augment: true``); the CAE with the L1 loss and Adam 1e-3. Images are tensors ``(N, C, H, W)`` in [0, 1].

A stratified ``val_fraction`` of the training images selects the best epoch (and stops early after
``patience`` epochs without improvement); the test set is only used for the final metrics. Both loops train
through the pipeline's one kernel (:func:`xaipipe.fitting.fit`), which keeps every epoch's wall time out of
the history (the stages write it to ``timing.json``).
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError, XaipipeError
from ...fitting import EpochData, EpochStats, Fitted, Settings, Step
from ...fitting import fit as fit_kernel
from ...losses import LossInputs, Objective
from ...train import Split
from ...train import predict as predict_split
from ...io import atomic_path

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, dict]]


# --- data ----------------------------------------------------------------------------------------------
def load_labels(path: str) -> np.ndarray:
    with np.load(path) as z:
        return z["y"].astype(np.int64)


def load_images(path: str, idx: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """``x`` uint8 ``(N, H, W)`` or ``(N, H, W, C)`` -> float ``(N, C, H, W)`` in [0, 1]; ``y`` int64.
    With ``idx`` only those images (in that order)."""
    with np.load(path) as z:
        x, y = z["x"], z["y"].astype(np.int64)
    if idx is not None:
        x, y = x[idx], y[idx]
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    else:
        raise XaipipeError(f"{path}: images must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    return torch.from_numpy(x.astype(np.float32) / 255.0), y


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops of the zero-padded images (``pad`` pixels) and random horizontal flips."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = xp[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


# --- optimisation --------------------------------------------------------------------------------------
def settings_for(cfg: dict, seed: int, **kw) -> Settings:
    """The kernel settings of a training section: ``optimizer`` (``adam``, ``adamw`` or ``sgd`` with plain
    momentum), ``lr``, ``weight_decay``, ``momentum``, ``epochs`` and the learning-rate ``schedule``
    (``constant``, ``cosine`` or ``step`` with ``milestones`` in epochs and ``gamma``, after ``warmup_epochs``
    of linear warm-up, stepped after every optimiser step); ``kw`` sets the rest (selection, clipping)."""
    return Settings(epochs=int(cfg.get("epochs", 5)), lr=float(cfg.get("lr", 1e-3)),
                    optimizer=cfg.get("optimizer", "adam"), weight_decay=float(cfg.get("weight_decay", 0.0)),
                    momentum=float(cfg.get("momentum", 0.9)), nesterov=False,
                    schedule=cfg.get("schedule", "constant"), warmup_epochs=float(cfg.get("warmup_epochs", 0.0)),
                    milestones=tuple(int(m) for m in cfg.get("milestones", [])), gamma=float(cfg.get("gamma", 0.1)),
                    seed=seed, where="xdistill training", **kw)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> np.ndarray:
    """Predicted classes ``(N,)`` of ``model`` (eval mode): the pipeline's one prediction loop
    (:func:`xaipipe.train.predict`) on unlabelled images."""
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    return predict_split(model, Split(x, np.zeros(len(x), dtype=np.int64)), batch_size, device)[0]


def _batches(bs: int, device: torch.device, *tensors: torch.Tensor,
             augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable:
    """``batches(rng)`` of :class:`~xaipipe.fitting.EpochData`: the rows of ``tensors`` in a fresh random
    order per epoch, ``bs`` at a time, on ``device``; ``augment`` transforms the first tensor's batch."""
    def batches(rng: np.random.Generator):
        order = rng.permutation(len(tensors[0]))
        for i in range(0, len(order), bs):
            idx = torch.as_tensor(order[i:i + bs])
            first = tensors[0][idx]
            yield (augment(first) if augment else first).to(device), *(t[idx].to(device) for t in tensors[1:])
    return batches


def fit(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: np.ndarray, val: tuple[torch.Tensor, np.ndarray],
        cfg: dict, device: torch.device, seed: int, desc: str = "train", extra_params: list | None = None,
        select_best: bool = True, epochs: int | None = None, extra_modules: list[nn.Module] | None = None) -> Fitted:
    """Minimise ``loss_fn(model, xb, yb) -> (loss, logits, parts)`` over mini-batches; the history has
    ``train_loss``, ``train_<part>``, ``train_acc``, ``lr`` and ``val_acc`` per epoch. With ``select_best``
    the epoch of the best validation accuracy (training accuracy without validation images) is selected,
    its weights restored, and ``patience`` stops early; without, the last epoch is kept."""
    bs = int(cfg.get("batch_size", 64))
    settings = settings_for({**cfg, **({} if epochs is None else {"epochs": epochs})}, seed,
                            grad_clip=cfg.get("grad_clip"), patience=int(cfg.get("patience", 0)),
                            select=("val_acc", "train_acc") if select_best else None)
    gen = torch.Generator().manual_seed(seed)
    augment = (lambda xb: augment_batch(xb, gen)) if cfg.get("augment", False) else None
    xv, yv = val

    def objective(model: nn.Module, batch, epoch: int) -> Step:
        xb, yb = batch
        loss, logits, parts = loss_fn(model, xb, yb)
        if not torch.isfinite(loss):
            raise XaipipeError(f"{desc}: the loss became {float(loss)} in epoch {epoch}; lower the "
                               f"learning rate or the transfer weight")
        n = len(yb)
        return Step(loss, n, {"loss": float(loss.detach()) * n, **{k: v * n for k, v in parts.items()},
                              "acc": int((logits.argmax(1) == yb).sum())})

    def report(stats: EpochStats) -> dict:
        row = {"epoch": stats.epoch, **{f"train_{k}": v for k, v in stats.means.items()}, "lr": stats.lr}
        if len(yv):
            row["val_acc"] = float((predict(model, xv, device) == yv).mean())
        return row

    params = [p for p in model.parameters() if p.requires_grad] + list(extra_params or [])
    data = EpochData(_batches(bs, device, x, torch.from_numpy(y), augment=augment), math.ceil(len(y) / bs))
    return fit_kernel(model, objective, data, settings, report=report, desc=desc, params=params,
                      train_modules=extra_modules or ())


def teacher_loss(kind: str) -> LossFn:
    """``ce`` (cross-entropy) or ``mse`` (squared error of softmax vs one-hot, the paper's LeNet loss)."""
    if kind not in ("ce", "mse"):
        raise ConfigError(f"teacher loss must be ce or mse, got {kind!r}")
    terms = Objective({"ce" if kind == "ce" else "softmax_mse": 1.0})  # the registered loss terms

    def fn(model, xb, yb):
        logits = model(xb)
        loss, _ = terms(LossInputs(logits=logits, labels=yb))
        return loss, logits, {}
    return fn


# --- the autoencoder -------------------------------------------------------------------------------------
def fit_cae(cae: nn.Module, x: torch.Tensor, e: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor], cfg: dict,
            device: torch.device, seed: int, desc: str = "cae") -> Fitted:
    """Train ``cae`` to map images ``x`` to explanation maps ``e`` ``(N, 1, H, W)`` with the L1 loss (Eq. 4;
    mean absolute error); the epoch with the lowest validation L1 (training L1 without validation images)
    is kept. The CAE trains every epoch, without gradient clipping or early stopping."""
    bs = int(cfg.get("batch_size", 64))
    xv, ev = val

    terms = Objective({"l1": 1.0})  # Eq. 4, from the registered loss terms

    def objective(cae: nn.Module, batch, epoch: int) -> Step:
        xb, eb = batch
        loss, _ = terms(LossInputs(extra={"outputs": cae(xb), "targets": eb}))
        return Step(loss, len(xb), {"l1": float(loss.detach()) * len(xb)})

    def report(stats: EpochStats) -> dict:
        row = {"epoch": stats.epoch, "train_l1": stats.means["l1"]}
        if len(xv):
            row.update(cae_errors(cae, xv, ev, device, prefix="val_"))
        return row

    data = EpochData(_batches(bs, device, x, e), math.ceil(len(x) / bs))
    return fit_kernel(cae, objective, data, settings_for(cfg, seed, select=("val_l1", "train_l1"), mode="min"),
                      report=report, desc=desc, params=list(cae.parameters()))


@torch.inference_mode()
def cae_outputs(cae: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> np.ndarray:
    cae.eval()
    out = [cae(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def cae_errors(cae: nn.Module, x: torch.Tensor, e: torch.Tensor, device: torch.device, prefix: str = "") -> dict:
    """L1, MSE and Pearson correlation between the CAE's output and the target explanations."""
    out = cae_outputs(cae, x, device).ravel().astype(np.float64)
    tgt = e.numpy().ravel().astype(np.float64)
    corr = float(np.corrcoef(out, tgt)[0, 1]) if out.std() > 0 and tgt.std() > 0 else float("nan")
    return {f"{prefix}l1": float(np.abs(out - tgt).mean()), f"{prefix}mse": float(((out - tgt) ** 2).mean()),
            f"{prefix}corr": corr}


def write_history(history: list[dict], path: str) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False, float_format="%.6g")


__all__ = ["augment_batch", "cae_errors", "cae_outputs", "fit", "fit_cae", "load_images", "load_labels", "predict",
           "settings_for", "teacher_loss", "write_history"]
