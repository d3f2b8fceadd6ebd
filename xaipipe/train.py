"""Training of teachers and student baselines (report sections 2 and 7).

One loop serves every model: Adam(W) with linear warm-up then cosine decay (``schedule``), label
smoothing, early stopping on a stratified validation split carved from the training split
(``val_fraction``, ``patience``) with the best weights restored, seeded and deterministic on the CPU.
Text documents are batched in length buckets (documents of similar length share a batch and are padded
only to the batch's longest, at most ``max_len``); the CNN masks padding out of the max-pool, so this is
exact, and it cuts the cost of an epoch on 20 Newsgroups several-fold.

Interrupted training resumes: after every epoch :func:`fit` writes (atomically) a resume checkpoint with
the model, optimiser, scheduler, random-generator states and history beside the model
(``resume.pt``; tensors and plain data only, read with the safe loader). A rerun with the same
configuration and data continues after the last finished epoch and ends with exactly the weights, history
and metrics of an uninterrupted run; the file is deleted once the model's outputs are written. A checkpoint
from another configuration is ignored (and logged). One process at a time trains on a checkpoint: it is
locked (``resume.pt.lock``) from the first epoch until the outputs are written, and a second trainer fails
at once naming the holder's pid and host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .data.split import val_split  # noqa: F401 - the text and image stages' validation split
from .determinism import seed_everything
from .errors import ConfigError, ModelAtChanceError, check_finite
from .fitting import EpochData, EpochStats, Settings, Step, divergence_message
from .fitting import fit as fit_kernel
from .io import atomic_path, write_json
from .models import build_model, count_parameters, save_checkpoint
from .process import hold_checkpoint

log = logging.getLogger(__name__)


# --- reproducibility and devices ---------------------------------------------------------------------
def set_seed(seed: int, deterministic: bool = True, device: object = None) -> None:
    """Seed ``random``, NumPy's global generator and torch; with ``deterministic``, deterministic
    algorithms (strict on the CPU, warn-only on a CUDA ``device``; None: CUDA if visible). See
    :mod:`xaipipe.determinism`."""
    seed_everything(seed, device, deterministic)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but no CUDA GPU is visible; use device: auto or cpu")
    return torch.device(name)


# --- text encoding and batching ----------------------------------------------------------------------
def encode(docs: Sequence[Sequence[str]], word2idx: dict[str, int]) -> tuple[list[np.ndarray], int]:
    """Token lists -> arrays of vocabulary indices, out-of-vocabulary tokens dropped.

    Returns the arrays and the number of documents left with no known word (encoded as one padding
    index, so every document still has a prediction)."""
    out, n_empty = [], 0
    for doc in docs:
        ids = np.fromiter((word2idx[t] for t in doc if t in word2idx), dtype=np.int64)
        if ids.size == 0:
            ids = np.zeros(1, dtype=np.int64)
            n_empty += 1
        out.append(ids)
    return out, n_empty


def pad_batch(seqs: Sequence[np.ndarray], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (and truncate to ``max_len``) to ``(B, L)`` ids plus ``(B,)`` lengths."""
    lens = [len(s) if max_len is None else min(len(s), max_len) for s in seqs]
    width = max(lens)
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for i, (s, n) in enumerate(zip(seqs, lens)):
        out[i, :n] = s[:n]
    return torch.from_numpy(out), torch.tensor(lens, dtype=torch.long)


def bucket_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                   bucket_factor: int = 50) -> list[np.ndarray]:
    """Index batches grouped by length. With ``rng``: shuffled pools of ``bucket_factor`` batches,
    sorted by length inside each pool, batch order shuffled. Without: sorted, in order."""
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    pool = batch_size * bucket_factor
    batches = []
    for i in range(0, n, pool):
        chunk = perm[i:i + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@dataclass
class Split:
    """A split ready for a model: inputs (token arrays or an image tensor) and labels."""

    x: list[np.ndarray] | torch.Tensor
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "Split":
        x = [self.x[i] for i in idx] if isinstance(self.x, list) else self.x[torch.as_tensor(idx)]
        return Split(x, self.y[idx])

    def batches(self, batch_size: int, rng: np.random.Generator | None, max_len: int | None,
                device: torch.device) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        if isinstance(self.x, list):
            lengths = np.array([len(s) if max_len is None else min(len(s), max_len) for s in self.x])
            for idx in bucket_batches(lengths, batch_size, rng):
                tokens, lens = pad_batch([self.x[i] for i in idx], max_len)
                yield (tokens.to(device), lens.to(device)), torch.from_numpy(self.y[idx]).to(device)
        else:
            order = rng.permutation(len(self.y)) if rng is not None else np.arange(len(self.y))
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                yield (self.x[torch.as_tensor(idx)].to(device),), torch.from_numpy(self.y[idx]).to(device)


# --- the loop ----------------------------------------------------------------------------------------
def token_budget_batches(lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Index batches in ascending length, each of at most ``batch_size`` documents and at most
    ``max_tokens`` padded tokens (documents x the batch's longest; a longer document is a batch alone)."""
    order = np.argsort(lengths, kind="stable")
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * max(int(lengths[i]), 1) > max_tokens):
            batches.append(np.asarray(cur))
            cur = []
        cur.append(i)
    if cur:
        batches.append(np.asarray(cur))
    return batches


#: padded tokens per prediction batch: 20 Newsgroups has a 58,398-word test document, and 100 documents
#: padded to it would need ~19 GB for the embedded input and the convolution of a 512-channel teacher
PREDICT_MAX_TOKENS = 1 << 17


@torch.inference_mode()
def predict(model: nn.Module, split: Split, batch_size: int, device: torch.device,
            max_len: int | None = None) -> tuple[np.ndarray, float]:
    """Predicted labels (in split order) and the mean cross-entropy. Text is batched by length with a
    token budget (:data:`PREDICT_MAX_TOKENS`), so whole long documents fit in memory."""
    model.eval()
    preds = np.zeros(len(split), dtype=np.int64)
    loss_sum = 0.0
    if isinstance(split.x, list):
        lengths = np.array([len(s) if max_len is None else min(len(s), max_len) for s in split.x])
        batches = token_budget_batches(lengths, batch_size, PREDICT_MAX_TOKENS)
    else:
        batches = [np.arange(i, min(i + batch_size, len(split))) for i in range(0, len(split), batch_size)]
    for idx in batches:
        if isinstance(split.x, list):
            tokens, lens = pad_batch([split.x[i] for i in idx], max_len)
            logits = model(tokens.to(device), lens.to(device))
        else:
            logits = model(split.x[torch.as_tensor(idx)].to(device))
        y = torch.from_numpy(split.y[idx]).to(device)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        preds[idx] = logits.argmax(1).cpu().numpy()
    return preds, loss_sum / max(1, len(split))


def _fingerprint(model: nn.Module, train: Split, val: Split, cfg: dict, seed: int) -> str:
    """What a resume checkpoint must match: configuration, seed, architecture, the model's frozen buffers
    (a text CNN's embedding matrix: a rebuilt embedding with the same vocabulary must not resume a run
    trained on the old vectors) and the data's labels."""
    h = hashlib.sha256(json.dumps({"cfg": cfg, "seed": seed, "model": repr(model)}, sort_keys=True,
                                  default=str).encode())
    for name, buf in sorted(model.named_buffers()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(buf.detach().cpu().numpy()).tobytes())
    for split in (train, val):
        h.update(np.ascontiguousarray(split.y).tobytes())
        if isinstance(split.x, list):
            h.update(np.asarray([len(s) for s in split.x], dtype=np.int64).tobytes())
            h.update(b"".join(np.ascontiguousarray(s).tobytes() for s in split.x[:64]))
        else:
            h.update(str(tuple(split.x.shape)).encode())
    return h.hexdigest()


def training_epochs(cfg: dict, n_train: int) -> int:
    """``epochs``, raised so that training runs at least ``min_steps`` optimiser steps (``batch_size``
    documents each) on ``n_train`` training documents: a small dataset gives few steps per epoch, and a
    frozen-embedding CNN needs some hundreds of steps before it finds its features at all."""
    epochs = int(cfg.get("epochs", 10))
    min_steps = int(cfg.get("min_steps") or 0)
    per_epoch = max(1, math.ceil(n_train / int(cfg.get("batch_size", 64))))
    return max(epochs, math.ceil(min_steps / per_epoch))


def fit(model: nn.Module, train: Split, val: Split, cfg: dict, device: torch.device, seed: int,
        desc: str = "train", epoch_seconds: list[float] | None = None,
        resume: str | os.PathLike | None = None) -> tuple[list[dict], int]:
    """Train ``model`` in place; returns the per-epoch history and the best epoch (1-based). Wall times per
    epoch are appended to ``epoch_seconds`` (kept out of the history, which is deterministic).

    With ``resume`` (a file path), the full training state is written there after every epoch, and an
    existing checkpoint for the same configuration and data is continued from; the result is identical
    to an uninterrupted run. The caller deletes the file when its outputs are safe. The checkpoint is
    locked (``<resume>.lock``) while training: if another live process holds it, this fails at once with
    :class:`~xaipipe.errors.CheckpointInUseError`."""
    if resume is None:
        return _fit(model, train, val, cfg, device, seed, desc, epoch_seconds, None)
    with hold_checkpoint(resume):
        return _fit(model, train, val, cfg, device, seed, desc, epoch_seconds, resume)


def _fit(model: nn.Module, train: Split, val: Split, cfg: dict, device: torch.device, seed: int, desc: str,
         epoch_seconds: list[float] | None, resume: str | os.PathLike | None) -> tuple[list[dict], int]:
    bs = int(cfg.get("batch_size", 64))
    steps_per_epoch = math.ceil(len(train) / bs)
    epochs = training_epochs(cfg, len(train))
    if epochs > int(cfg.get("epochs", 10)):
        log.info("%s: %d epochs instead of %d, for at least min_steps = %d optimiser steps (%d per epoch)", desc,
                 epochs, int(cfg.get("epochs", 10)), int(cfg.get("min_steps") or 0), steps_per_epoch)
    max_len = cfg.get("max_len")
    smoothing = float(cfg.get("label_smoothing", 0.0))
    settings = Settings(
        epochs=epochs, lr=float(cfg.get("lr", 1e-3)), optimizer=cfg.get("optimizer", "adamw"),
        weight_decay=float(cfg.get("weight_decay", 0.0)), schedule=cfg.get("schedule", "cosine"),
        warmup_epochs=float(cfg.get("warmup_epochs", 0.0)), grad_clip=cfg.get("grad_clip"),
        select=("val_acc", "train_acc"), patience=int(cfg.get("patience", 0)),
        # no early stop before min_steps: a frozen-embedding CNN can sit at chance for a few epochs before it
        # finds its keywords, and patience would end it there
        patience_from=math.ceil(int(cfg.get("min_steps") or 0) / max(1, steps_per_epoch)), seed=seed)

    def objective(model: nn.Module, batch, epoch: int) -> Step:
        inputs, y = batch
        logits = model(*inputs)
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        # summed on the device (in float64, as Python floats would be): one synchronisation per epoch
        return Step(loss, len(y), {"loss": loss.detach().double() * len(y), "acc": (logits.argmax(1) == y).sum()})

    def report(stats: EpochStats) -> dict:
        val_pred, val_loss = predict(model, val, bs * 2, device, max_len) if len(val) else (np.array([]), float("nan"))
        if len(val):
            check_finite(val_loss, f"the validation loss of {desc} in epoch {stats.epoch}", divergence_message(settings))
        val_acc = float((val_pred == val.y).mean()) if len(val) else float("nan")
        return {"epoch": stats.epoch, "train_loss": stats.means["loss"], "train_acc": stats.means["acc"],
                "val_loss": val_loss, "val_acc": val_acc, "lr": stats.lr}

    data = EpochData(lambda rng: train.batches(bs, rng, max_len, device), steps_per_epoch)
    fingerprint = _fingerprint(model, train, val, cfg, seed) if resume is not None else ""
    fitted = fit_kernel(model, objective, data, settings, report=report, desc=desc, resume=resume,
                        fingerprint=fingerprint)
    if epoch_seconds is not None:
        epoch_seconds.extend(fitted.epoch_seconds)
    return fitted.history, fitted.best_epoch


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    k = len(classes)
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    support = cm.sum(1)
    per_class = {classes[i]: (float(cm[i, i] / support[i]) if support[i] else None) for i in range(k)}
    return {"accuracy": float((y_true == y_pred).mean()), "n_errors": int((y_true != y_pred).sum()),
            "n_test": int(len(y_true)), "per_class_accuracy": per_class, "confusion_matrix": cm.tolist()}


def plot_history(history: list[dict], path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(history)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(df["epoch"], df["train_loss"], "o-", label="train")
    a1.plot(df["epoch"], df["val_loss"], "s-", label="validation")
    a1.set_xlabel("epoch"); a1.set_ylabel("cross-entropy"); a1.legend()
    a2.plot(df["epoch"], df["train_acc"], "o-", label="train")
    a2.plot(df["epoch"], df["val_acc"], "s-", label="validation")
    a2.set_xlabel("epoch"); a2.set_ylabel("accuracy"); a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


# --- stage entry points ------------------------------------------------------------------------------
#: a model whose test accuracy has a larger one-sided binomial p-value against the chance level fails its job
CHANCE_ALPHA = 0.01


def chance_level(y_train: np.ndarray, y_test: np.ndarray, accuracy: float) -> dict:
    """The chance level of a test set and how far ``accuracy`` is above it: ``chance_accuracy`` is the test
    accuracy of always predicting the most frequent training class (a constant classifier's best guess),
    ``p_chance`` the one-sided binomial probability of at least this many correct test predictions at
    that rate (``scipy.stats.binomtest``)."""
    from scipy.stats import binomtest

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if not len(y_test):
        return {"chance_accuracy": None, "p_chance": 0.0}
    major = np.bincount(y_train).argmax() if len(y_train) else np.bincount(y_test).argmax()
    rate = float((y_test == major).mean())
    n = len(y_test)
    k = int(round(accuracy * n))
    p = 1.0 if rate >= 1.0 else float(binomtest(k, n, rate, alternative="greater").pvalue)
    return {"chance_accuracy": round(rate, 6), "p_chance": p}


def _run(model, arch, kwargs, train, test, classes, cfg, seed, device, outputs, meta, desc) -> dict:
    resume = Path(outputs["model"]).with_name("resume.pt")
    with hold_checkpoint(resume):  # from the first epoch until the outputs are written and resume.pt is gone
        return _run_locked(model, arch, kwargs, train, test, classes, cfg, seed, device, outputs, meta, desc, resume)


def _run_locked(model, arch, kwargs, train, test, classes, cfg, seed, device, outputs, meta, desc, resume) -> dict:
    tr_idx, va_idx = val_split(train.y, float(cfg.get("val_fraction", 0.1)), seed)
    t0 = time.perf_counter()
    epoch_seconds: list[float] = []
    history, best_epoch = fit(model, train.subset(tr_idx), train.subset(va_idx), cfg, device, seed, desc,
                              epoch_seconds=epoch_seconds, resume=resume)
    train_seconds = time.perf_counter() - t0
    pred, test_loss = predict(model, test, int(cfg.get("batch_size", 64)) * 2, device, None)
    check_finite(test_loss, f"the test loss of {desc}", "The model's outputs on the test split are not finite: "
                 "check the test data; no model was written")
    metrics = classification_metrics(test.y, pred, classes)
    metrics.update({"test_loss": test_loss, "n_parameters": count_parameters(model),
                    "n_parameters_total": count_parameters(model, trainable_only=False),
                    "epochs_run": len(history),
                    "best_epoch": best_epoch, "best_val_acc": max((h["val_acc"] for h in history), default=None),
                    "device": str(device), "seed": seed, "arch": arch,
                    "n_train": int(len(tr_idx)), "n_val": int(len(va_idx))})
    metrics.update(meta.pop("_metrics_extra", {}))
    metrics.update(chance_level(train.y[tr_idx], test.y, metrics["accuracy"]))
    if cfg.get("require_above_chance", True) and metrics["p_chance"] > CHANCE_ALPHA:
        raise ModelAtChanceError(
            f"{desc}: test accuracy {metrics['accuracy']:.4f} is not above chance (predicting the most frequent "
            f"training class gives {metrics['chance_accuracy']:.4f}; one-sided binomial p = {metrics['p_chance']:.3g}): "
            f"the model learned nothing, and its explanations would explain nothing. Look at the training curve in "
            f"the log, the embedding's mean_cosine in embedding/info.json and the TF-IDF reference; raise epochs or "
            f"lr. To keep such a model anyway set require_above_chance: false for it")
    save_checkpoint(outputs["model"], arch, kwargs, model, meta)
    with atomic_path(outputs["history"]) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False, float_format="%.6g")
    plot_history(history, outputs["plot"], desc)
    write_json(outputs["metrics"], metrics)
    if outputs.get("timing"):  # wall times apart, so that metrics.json is byte-identical between runs
        write_json(outputs["timing"], {"train_seconds": round(train_seconds, 1),
                                       "epoch_seconds": epoch_seconds,
                                       "device": str(device)})
    resume.unlink(missing_ok=True)  # every output is written: the resume checkpoint is no longer needed
    log.info("%s: test accuracy %.4f (%d errors of %d) in %.0fs", desc, metrics["accuracy"],
             metrics["n_errors"], metrics["n_test"], train_seconds)
    return metrics


def train_text_model(train_path: str, test_path: str, vocab: list[str], vectors: np.ndarray, stats: dict,
                     cfg: dict, seed: int, device: str, outputs: dict, desc: str = "model",
                     tokenizer: dict | None = None, vectors_file: str | None = None) -> dict:
    """Train a :class:`~xaipipe.models.TextCNN` on a prepared text dataset (parquet splits).

    ``vectors_file``: where ``vectors`` was read from (named when it holds NaN or infinite values)."""
    where = f"the embedding {vectors_file}" if vectors_file else "the embedding matrix"
    check_finite(vectors, where, "The embedding is broken: delete it and rerun the embedding rule"
                 + (f" (snakemake {vectors_file})" if vectors_file else ""))
    set_seed(seed, device=device)
    dev = resolve_device(device)
    w2i = {w: i for i, w in enumerate(vocab)}
    tr_df, te_df = pd.read_parquet(train_path), pd.read_parquet(test_path)
    x_tr, e_tr = encode(tr_df["tokens"], w2i)
    x_te, e_te = encode(te_df["tokens"], w2i)
    classes = stats["classes"]
    kwargs = {"n_classes": len(classes), "channels": int(cfg["channels"]),
              "kernel_size": int(cfg.get("kernel_size", 5)), "hidden": list(cfg.get("hidden", [])),
              "dropout": float(cfg.get("dropout", 0.5))}
    model = build_model("text_cnn", embedding=torch.from_numpy(vectors), **kwargs).to(dev)
    meta = {"vocab": vocab, "classes": classes, "tokenizer": tokenizer or {}, "dataset": stats.get("dataset"),
            "_metrics_extra": {"docs_without_known_word": {"train": e_tr, "test": e_te},
                               "max_len": cfg.get("max_len"),
                               "comparable_with_paper": stats.get("comparable_with_paper", True),
                               **({"note": stats["note"]} if "note" in stats else {})}}
    return _run(model, "text_cnn", kwargs, Split(x_tr, tr_df["label"].to_numpy()),
                Split(x_te, te_df["label"].to_numpy()), classes, cfg, seed, dev, outputs, meta, desc)


def load_mnist_npz(path: str) -> tuple[torch.Tensor, np.ndarray]:
    with np.load(path) as z:
        x = torch.from_numpy(z["x"].astype(np.float32) / 255.0)
        y = z["y"].astype(np.int64)
    return x, y


def train_image_model(train_path: str, test_path: str, stats: dict, cfg: dict, seed: int, device: str,
                      outputs: dict, desc: str = "model") -> dict:
    """Train an MLP on MNIST (pixels scaled to [0, 1])."""
    set_seed(seed, device=device)
    dev = resolve_device(device)
    x_tr, y_tr = load_mnist_npz(train_path)
    x_te, y_te = load_mnist_npz(test_path)
    for path, x in ((train_path, x_tr), (test_path, x_te)):
        check_finite(x, f"the images of {path}", f"The prepared data is broken: delete it and rerun the data "
                     f"preparation rule (snakemake {path})")
    classes = stats["classes"]
    kwargs = {"in_features": int(x_tr[0].numel()), "hidden": list(cfg.get("hidden", [1200, 1200])),
              "n_classes": len(classes), "dropout": float(cfg.get("dropout", 0.0)),
              "input_dropout": float(cfg.get("input_dropout", 0.0))}
    model = build_model("mlp", **kwargs).to(dev)
    meta = {"classes": classes, "dataset": stats.get("dataset")}
    return _run(model, "mlp", kwargs, Split(x_tr, y_tr), Split(x_te, y_te), classes, cfg, seed, dev,
                outputs, meta, desc)
