"""Training of one recurrent cell on one sequence length (Chormai 2018, section 4.4, Tables 4.2 and 4.4).

Adam on the softmax cross-entropy, dropout 0.5, batch 50, a fixed number of epochs (the thesis: 200;
the learning rate is "left adjustable", ``rnn.lr`` with per-cell overrides ``rnn.cell_lr``). The loop
is the pipeline's (:func:`xaipipe.train.fit`) with ``optimizer: adam`` and a constant learning rate:
seeded batches, a stratified validation split carved from the training images (``rnn.val_fraction``)
and the weights of the epoch with the best validation accuracy kept. The test accuracy is compared
with the minimum accuracy of Table 4.4 (0.98 MNIST, 0.85 Fashion-MNIST) and, where the draft has one,
with the published value of Table 4.5.
"""

from __future__ import annotations

import logging
import time

import pandas as pd

from .. import schema
from ..io import atomic_path, write_json
from ..train import Split, classification_metrics, fit, predict, resolve_device, set_seed, val_split
from .cells import build_cell, count_parameters, save_model
from .data import CLASSES, load_split, scale_pixels, subset
from .published import CELL_NAMES, TABLE_4_3, TABLE_4_5

log = logging.getLogger(__name__)

#: defaults of the ``rnn`` config keys used here, as declared in config/schema/rnn.yaml
DEFAULTS = schema.defaults("rnn", keys=("epochs", "batch_size", "lr", "cell_lr", "dropout", "init_std", "init_bias",
                                        "recur", "val_fraction", "max_train", "max_test", "pixel_range",
                                        "min_accuracy"))


def settings(cfg: dict | None) -> dict:
    """``cfg`` over :data:`DEFAULTS` (the schema fills the defaults in a workflow run; library callers
    may pass only what they change)."""
    return {**DEFAULTS, **(cfg or {})}


def learning_rate(cfg: dict, cell: str) -> float:
    return float((cfg.get("cell_lr") or {}).get(cell, cfg["lr"]))


def load_scaled(path: str, n: int | None, seed: int, pixel_range) -> tuple:
    """``(scaled images (N, 28, 28), labels, raw uint8 images, kept indices)`` of a prepared split,
    subset stratified and seeded to at most ``n`` images."""
    x, y = load_split(path)
    x, y, keep = subset(x, y, n, seed)
    return scale_pixels(x, pixel_range), y, x, keep


def train_cell(train_path: str, test_path: str, dataset: str, cell: str, seq: int, cfg: dict, seed: int,
               device: str, outputs: dict, desc: str | None = None) -> dict:
    """Train ``cell`` on ``SEQ = seq``; write ``outputs["model"]`` (checkpoint), ``["metrics"]`` (json)
    and ``["history"]`` (csv). Returns the metrics."""
    cfg = settings(cfg)
    desc = desc or f"{dataset}/{cell}_seq{seq}"
    set_seed(seed, device=device)
    dev = resolve_device(device)
    x_tr, y_tr, _, _ = load_scaled(train_path, cfg["max_train"], seed, cfg["pixel_range"])
    x_te, y_te, _, _ = load_scaled(test_path, cfg["max_test"], seed + 1, cfg["pixel_range"])
    classes = CLASSES.get(dataset, [str(i) for i in range(int(max(y_tr.max(), y_te.max())) + 1)])
    model = build_cell(cell, seq, n_classes=len(classes), height=x_tr.shape[1], width=x_tr.shape[2],
                       recur=int(cfg["recur"]), dropout=float(cfg["dropout"]), init_std=float(cfg["init_std"]),
                       init_bias=float(cfg["init_bias"])).to(dev)
    fit_cfg = {"optimizer": "adam", "schedule": "constant", "epochs": int(cfg["epochs"]),
               "batch_size": int(cfg["batch_size"]), "lr": learning_rate(cfg, cell), "weight_decay": 0.0,
               "patience": 0, "grad_clip": None}
    tr_idx, va_idx = val_split(y_tr, float(cfg["val_fraction"]), seed)
    log.info("%s: %s, %d parameters, %d train / %d validation / %d test images, lr %g", desc,
             model.layer_sizes(), count_parameters(model), len(tr_idx), len(va_idx), len(y_te), fit_cfg["lr"])
    t0 = time.perf_counter()
    epoch_seconds: list[float] = []
    history, best_epoch = fit(model, Split(x_tr, y_tr).subset(tr_idx), Split(x_tr, y_tr).subset(va_idx),
                              fit_cfg, dev, seed, desc, epoch_seconds=epoch_seconds)
    seconds = time.perf_counter() - t0
    pred, test_loss = predict(model, Split(x_te, y_te), 500, dev)
    metrics = classification_metrics(y_te, pred, classes)
    n_params = count_parameters(model)
    criterion = (cfg.get("min_accuracy") or {}).get(dataset)
    published_params = TABLE_4_3.get(cell, {}).get(seq) if len(classes) == 10 and cfg["recur"] == 128 else None
    metrics.update({
        "dataset": dataset, "cell": cell, "cell_name": CELL_NAMES.get(cell, cell), "seq": seq,
        "test_loss": test_loss, "n_parameters": n_params, "published_parameters": published_params,
        "parameters_match": (n_params == published_params) if published_params is not None else None,
        "published_accuracy": TABLE_4_5.get((dataset, cell, seq)),
        "min_accuracy": criterion,
        "meets_criterion": (metrics["accuracy"] >= criterion) if criterion is not None else None,
        "epochs": int(cfg["epochs"]), "epochs_run": len(history), "best_epoch": best_epoch,
        "best_val_acc": max((h["val_acc"] for h in history), default=None) if len(va_idx) else None,
        "lr": fit_cfg["lr"], "batch_size": fit_cfg["batch_size"], "dropout": float(cfg["dropout"]),
        "pixel_range": list(cfg["pixel_range"]), "device": str(dev),
        "seed": seed, "n_train": int(len(tr_idx)), "n_val": int(len(va_idx)), "layer_sizes": model.layer_sizes(),
    })
    save_model(outputs["model"], model.cpu(), {"dataset": dataset, "classes": classes,
                                               "pixel_range": list(cfg["pixel_range"]), "seed": seed})
    with atomic_path(outputs["history"]) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False, float_format="%.6g")
    write_json(outputs["metrics"], metrics)
    if outputs.get("timing"):  # wall times apart, so that metrics.json and history.csv are byte-identical
        write_json(outputs["timing"], {"train_seconds": round(seconds, 1), "epoch_seconds": epoch_seconds,
                                       "device": str(dev)})
    log.info("%s: test accuracy %.4f (criterion %s, published %s) after %d epochs in %.0fs", desc,
             metrics["accuracy"], criterion, metrics["published_accuracy"], len(history), seconds)
    return metrics
