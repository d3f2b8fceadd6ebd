"""Training loops of the XDistillation stage: classifiers (teachers and students, any
:class:`~.methods.StudentMethod` objective) and the convolutional autoencoder (L1 loss, Eq. 4).

Recipes of section IV-A: the MNIST LeNet-5 teacher with the MSE loss (``loss: mse``: squared error
between the softmax output and the one-hot label) and Adam 1e-3; the CIFAR-10 VGG16 teacher with SGD
(momentum 0.9), batch 128, learning rate 0.1 / 0.01 / 0.001 from epochs 0 / 150 / 250 (``schedule: step``,
``milestones``, ``gamma``) and random 32x32 crops of the 4-pixel padded image plus horizontal flips
(``augment: true``); the CAE with the L1 loss and Adam 1e-3. Images are tensors ``(N, C, H, W)`` in [0, 1].

A stratified ``val_fraction`` of the training images selects the best epoch (and stops early after
``patience`` epochs without improvement); the test set is only used for the final metrics.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ...errors import ConfigError, XaipipeError
from ...io import atomic_path
from ...optim import lr_lambda, make_optimizer
from ...train import optimizer_step

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
def optimizer_for(params: list, cfg: dict) -> torch.optim.Optimizer:
    """The optimiser a training section asks for (``optimizer``, ``lr``, ``weight_decay``, ``momentum``)."""
    return make_optimizer(params, cfg.get("optimizer", "adam"), cfg.get("lr", 1e-3), cfg.get("weight_decay", 0.0),
                          momentum=cfg.get("momentum", 0.9), where="xdistill training")


def lr_factor(cfg: dict, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimiser step ``t`` (``constant``, ``cosine`` or ``step``
    with ``milestones`` in epochs and ``gamma``), after ``warmup_epochs`` of linear warm-up."""
    total = max(1, steps_per_epoch * int(cfg.get("epochs", 5)))
    warm = int(float(cfg.get("warmup_epochs", 0.0)) * steps_per_epoch)
    milestones = [int(m) * steps_per_epoch for m in cfg.get("milestones", [])]
    return lr_lambda(total, warm, cfg.get("schedule", "constant"), milestones, float(cfg.get("gamma", 0.1)))


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> np.ndarray:
    """Predicted classes ``(N,)`` of ``model`` (eval mode)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        out.append(model(x[i:i + batch_size].to(device)).argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def fit(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: np.ndarray, val: tuple[torch.Tensor, np.ndarray],
        cfg: dict, device: torch.device, seed: int, desc: str = "train", extra_params: list | None = None,
        select_best: bool = True, epochs: int | None = None, extra_modules: list[nn.Module] | None = None
        ) -> tuple[list[dict], int]:
    """Minimise ``loss_fn(model, xb, yb) -> (loss, logits, parts)`` over mini-batches; returns the
    per-epoch history and the best epoch (validation accuracy; the best weights are restored)."""
    epochs = int(cfg.get("epochs", 5)) if epochs is None else int(epochs)
    bs = int(cfg.get("batch_size", 64))
    params = [p for p in model.parameters() if p.requires_grad] + list(extra_params or [])
    opt = optimizer_for(params, cfg)
    steps = math.ceil(len(y) / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor({**cfg, "epochs": epochs}, steps))
    patience = int(cfg.get("patience", 0)) or None
    augment = bool(cfg.get("augment", False))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    yt = torch.from_numpy(y)
    history: list[dict] = []
    best, best_state, bad = (-1.0, 0), None, 0
    xv, yv = val
    for epoch in range(1, epochs + 1):
        model.train()
        for m in extra_modules or []:
            m.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        correct = seen = 0
        order = rng.permutation(len(y))
        for i in tqdm(range(0, len(order), bs), desc=f"{desc} epoch {epoch}/{epochs}", leave=False,
                      mininterval=5.0):
            idx = torch.as_tensor(order[i:i + bs])
            xb = x[idx]
            if augment:
                xb = augment_batch(xb, gen)
            xb, yb = xb.to(device), yt[idx].to(device)
            loss, logits, parts = loss_fn(model, xb, yb)
            if not torch.isfinite(loss):
                raise XaipipeError(f"{desc}: the loss became {float(loss)} in epoch {epoch}; lower the "
                                   f"learning rate or the transfer weight")
            optimizer_step(loss, opt, sched, params, cfg.get("grad_clip"))
            n = len(yb)
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * n
            correct += int((logits.argmax(1) == yb).sum())
            seen += n
        row = {"epoch": epoch, **{f"train_{k}": v / seen for k, v in sums.items()},
               "train_acc": correct / seen, "lr": opt.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 2)}
        if len(yv):
            row["val_acc"] = float((predict(model, xv, device) == yv).mean())
        history.append(row)
        log.info("%s epoch %d: %s", desc, epoch,
                 " ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        score = row.get("val_acc", row["train_acc"])
        if not select_best:
            continue
        if score > best[0]:
            best, bad = (score, epoch), 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if patience and bad >= patience:
                log.info("%s: early stop after epoch %d (best %d)", desc, epoch, best[1])
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history, (best[1] if select_best else len(history))


def teacher_loss(kind: str) -> LossFn:
    """``ce`` (cross-entropy) or ``mse`` (squared error of softmax vs one-hot, the paper's LeNet loss)."""
    if kind not in ("ce", "mse"):
        raise ConfigError(f"teacher loss must be ce or mse, got {kind!r}")

    def fn(model, xb, yb):
        logits = model(xb)
        if kind == "ce":
            loss = F.cross_entropy(logits, yb)
        else:
            loss = F.mse_loss(torch.softmax(logits, 1), F.one_hot(yb, logits.shape[1]).to(logits.dtype),
                              reduction="sum") / len(yb)
        return loss, logits, {}
    return fn


# --- the autoencoder -------------------------------------------------------------------------------------
def fit_cae(cae: nn.Module, x: torch.Tensor, e: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor], cfg: dict,
            device: torch.device, seed: int, desc: str = "cae") -> tuple[list[dict], int]:
    """Train ``cae`` to map images ``x`` to explanation maps ``e`` ``(N, 1, H, W)`` with the L1 loss (Eq. 4;
    mean absolute error); the epoch with the lowest validation L1 is kept."""
    epochs, bs = int(cfg.get("epochs", 5)), int(cfg.get("batch_size", 64))
    opt = optimizer_for(list(cae.parameters()), cfg)
    steps = math.ceil(len(x) / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, steps))
    rng = np.random.default_rng(seed)
    history, best, best_state = [], (float("inf"), 0), None
    xv, ev = val
    for epoch in range(1, epochs + 1):
        cae.train()
        t0, total, seen = time.perf_counter(), 0.0, 0
        order = rng.permutation(len(x))
        for i in tqdm(range(0, len(order), bs), desc=f"{desc} epoch {epoch}/{epochs}", leave=False,
                      mininterval=5.0):
            idx = torch.as_tensor(order[i:i + bs])
            xb, eb = x[idx].to(device), e[idx].to(device)
            loss = F.l1_loss(cae(xb), eb)
            optimizer_step(loss, opt, sched)
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        row = {"epoch": epoch, "train_l1": total / seen, "seconds": round(time.perf_counter() - t0, 2)}
        if len(xv):
            row.update(cae_errors(cae, xv, ev, device, prefix="val_"))
        history.append(row)
        log.info("%s epoch %d: %s", desc, epoch, " ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        score = row.get("val_l1", row["train_l1"])
        if score < best[0]:
            best = (score, epoch)
            best_state = {k: v.detach().clone() for k, v in cae.state_dict().items()}
    if best_state is not None:
        cae.load_state_dict(best_state)
    return history, best[1]


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


__all__ = ["augment_batch", "cae_errors", "cae_outputs", "fit", "fit_cae", "load_images", "load_labels", "lr_factor",
           "optimizer_for", "predict", "teacher_loss", "write_history"]
