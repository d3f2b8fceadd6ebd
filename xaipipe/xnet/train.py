"""Training XNet and its baseline (David & Liu, 002_8ecab4f1e6369166.txt, sections 2.1-2.2 and 4).

Every variant trains through the pipeline's training kernel (:func:`xaipipe.fitting.fit`: optimiser,
learning-rate steps, updates, the history's epochs); XNet adds its objective, its minibatches, the
matching before an epoch and the drop-loss curves. A variant is ``{alpha, reduction, matching, kind}``:

* ``baseline``: ``alpha = 0`` (the same network without the regulariser; drop-losses are still
  measured, for Figure 1);
* ``xnet``: Eq. (2), ``L(θ, X) - α min_j L(θ̂_j, X_j)`` with ``α = 0.05``;
* Eq. (1) (``reduction: mean`` or ``sum``, Figure 7) and the matching variants (``matching: initial`` or
  ``em``, Figure 8; matched on the training split with Algorithms 1-2, :mod:`.matching`).

Optimisation as in section 2.2 (the defaults): SGD, learning rate 0.1, momentum 0.9, divided by 10 every
two epochs, batch size 128, 8 epochs (the paper's "early stopping after the eighth epoch"; no validation-based model
selection). Recorded during training (``droploss.csv``, columns ``source, epoch, step, category, neuron, droploss, n,
matched``): the category-by-neuron drop-loss means L(θ̂_i, X_j) over every ``log_every`` training
minibatches (``source = train``; ``epoch`` is fractional) and Algorithm 1's matrix on the test split
before training and after every epoch (``source = test``); ``matched`` marks the pairs the objective
used, ``n`` is the number of examples of the category. After training: test accuracy (Table 1) and the
category-by-neuron activations (Figure 2). Wall times go to ``timing.json`` only, so that the history
and the metrics of two runs of one config are the same bytes.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ..errors import ConfigError, XaipipeError
from ..fitting import EpochData, EpochStats, Settings, Step, fit
from ..io import atomic_path, write_json
from ..train import classification_metrics, resolve_device, set_seed
from .data import XData, XSplit
from .droploss import KINDS, REDUCTIONS, DropLosses, drop_losses, loss_terms, xnet_objective
from .matching import MATCHINGS, compute_droplosses, identity_assignment, match
from .models import XNet, save_xnet

log = logging.getLogger(__name__)

DEFAULT_TRAINING = {"epochs": 8, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0,
                    "lr_step_epochs": 2, "lr_gamma": 0.1, "log_every": 50, "eval_batch_size": 512,
                    "matching_max_examples": None, "num_workers": 0}
DEFAULT_VARIANT = {"alpha": 0.0, "reduction": "min", "matching": "none", "kind": "loss"}


def check_variant(variant: dict) -> dict:
    v = {**DEFAULT_VARIANT, **variant}
    if v["reduction"] not in REDUCTIONS:
        raise ConfigError(f"xnet variant: reduction {v['reduction']!r} unknown; use one of {sorted(REDUCTIONS)}")
    if v["matching"] not in MATCHINGS:
        raise ConfigError(f"xnet variant: matching {v['matching']!r} unknown; use one of {MATCHINGS}")
    if v["kind"] not in KINDS:
        raise ConfigError(f"xnet variant: kind {v['kind']!r} unknown; use one of {KINDS}")
    if float(v["alpha"]) < 0:
        raise ConfigError(f"xnet variant: alpha must be >= 0, got {v['alpha']}")
    return v


def build_xnet(data: XData, model_cfg: dict) -> tuple[XNet, dict]:
    """The XNet for ``data`` (k = number of categories) and the kwargs that rebuild it."""
    kwargs = {"in_shape": list(data.in_shape), "n_neurons": len(data.categories), "n_classes": len(data.classes),
              "backbone": model_cfg.get("backbone", "mlp"), "activation": model_cfg.get("activation", "relu")}
    for key in ("hidden", "channels", "pretrained_weights"):
        if model_cfg.get(key) is not None:
            kwargs[key] = model_cfg[key]
    return XNet(**kwargs), kwargs


@torch.no_grad()
def evaluate(model: XNet, split: XSplit, n_categories: int, batch_size: int, device: torch.device,
             num_workers: int = 0, activations: bool = False) -> dict:
    """Predictions, mean test loss, Algorithm 1's drop-losses and (optionally) the per-category sums of
    the explainable activations, in one pass over ``split`` (in order)."""
    was_training = model.training
    model.eval()
    preds = np.zeros(len(split), dtype=np.int64)
    loss_sum, pos = 0.0, 0
    acc = DropLosses.zeros(n_categories, model.n_neurons, device)
    act = torch.zeros(n_categories, model.n_neurons, device=device)
    for x, y, a in split.batches(batch_size, None, device, num_workers):
        h = model.hidden(x)
        logits = model.head(h)
        full = F.cross_entropy(logits, y, reduction="none")
        acc = acc.add(drop_losses(model.head_drop_each, h, y, a, full))
        if activations:
            act += a.to(h.dtype).t() @ h
        loss_sum += float(full.sum())
        preds[pos:pos + len(y)] = logits.argmax(1).cpu().numpy()
        pos += len(y)
    model.train(was_training)
    out = {"pred": preds, "loss": loss_sum / max(1, len(split)), "droplosses": acc}
    if activations:
        out["activation_sums"] = act.cpu().numpy()
    return out


def _rows(source: str, epoch: float, step: int, dl: DropLosses, assignment: np.ndarray,
          categories: list[str]) -> list[dict]:
    m, n = dl.matrix.cpu().numpy(), dl.counts.cpu().numpy()
    rows = []
    for j, cat in enumerate(categories):
        if n[j] == 0:
            continue
        for i in range(m.shape[1]):
            rows.append({"source": source, "epoch": round(float(epoch), 4), "step": int(step), "category": cat,
                         "neuron": i, "droploss": float(m[j, i]), "n": int(n[j]),
                         "matched": bool(assignment[j] == i)})
    return rows


def train_xnet(data: XData, model_cfg: dict, train_cfg: dict, variant: dict, seed: int = 0,
               device: str = "auto", desc: str = "xnet") -> dict:
    """Train one variant; returns the model, its kwargs, history, drop-loss curves, matchings, the final
    test evaluation and the wall times (``train_seconds``, ``epoch_seconds``; see :func:`run_variant` for
    the files)."""
    cfg = {**DEFAULT_TRAINING, **train_cfg}
    v = check_variant(variant)
    set_seed(seed, device=device)
    dev = resolve_device(device)
    model, kwargs = build_xnet(data, model_cfg)
    model.to(dev)
    k, cats = len(data.categories), data.categories
    alpha, reduction, kind = float(v["alpha"]), v["reduction"], v["kind"]
    terms = loss_terms(alpha, reduction, kind)  # CE - alpha R from the registered loss terms
    bs, epochs, nw = int(cfg["batch_size"]), int(cfg["epochs"]), int(cfg["num_workers"])
    ebs = int(cfg["eval_batch_size"])
    # SGD with momentum, without Nesterov (the paper's), or Adam (for the TF-IDF stand-in, whose small feature
    # values make SGD at lr 0.1 stall); the learning rate is multiplied by lr_gamma every lr_step_epochs epochs
    settings = Settings(epochs=epochs, lr=cfg["lr"], optimizer=cfg["optimizer"], weight_decay=cfg["weight_decay"],
                        momentum=cfg["momentum"], nesterov=False, optimizers=("sgd", "adam"),
                        lr_step_epochs=int(cfg["lr_step_epochs"]), gamma=float(cfg["lr_gamma"]), seed=seed,
                        where="xnet training")
    steps_per_epoch = math.ceil(len(data.train) / bs)
    log_every = max(1, int(cfg["log_every"]))
    assignment = identity_assignment(k)
    assign_t = torch.as_tensor(assignment, device=dev)
    window = DropLosses.zeros(k, k, dev)  # the drop-loss sums of the training minibatches since the last curve point
    step = 0  # optimiser steps so far, over all epochs
    matchings: list[dict] = []
    curves: list[dict] = []

    def do_match(epoch: int) -> None:
        nonlocal assignment
        lim = cfg["matching_max_examples"]
        batches = data.train.batches(ebs, np.random.default_rng(seed + epoch) if lim else None, dev, nw, lim)
        dl = compute_droplosses(model, batches, k)
        assignment = match(dl.matrix)
        matchings.append({"before_epoch": epoch, "matrix": dl.matrix.cpu().numpy().round(6).tolist(),
                          "assignment": assignment.tolist()})
        log.info("%s: matching before epoch %d -> category->neuron %s", desc, epoch,
                 dict(zip(cats, assignment.tolist())))

    def start_epoch(epoch: int) -> None:
        """EM matching (Algorithm 2) re-matches before every epoch after the first."""
        nonlocal assign_t, window
        if v["matching"] == "em" and epoch > 1:
            do_match(epoch)
        assign_t = torch.as_tensor(assignment, device=dev)
        window = DropLosses.zeros(k, k, dev)

    def objective(model: XNet, batch, epoch: int) -> Step:
        """Eq. (1) or (2) of one minibatch; every ``log_every`` steps a point of the training curves."""
        nonlocal step, window
        x, y, a = batch
        obj, cls, reg, dl, logits = xnet_objective(model, x, y, a, alpha, assign_t, reduction, kind, terms)
        if not torch.isfinite(obj):
            raise XaipipeError(
                f"{desc}: the objective became {float(obj.detach())} at epoch {epoch}, step {step + 1} "
                f"(classification loss {float(cls.detach()):.4g}, drop-loss term {float(reg):.4g}); the "
                f"drop-loss term is unbounded, lower alpha, lr or epochs")
        step += 1  # the kernel updates on obj right after this returns
        n = len(y)
        window = window.add(dl)
        if step % log_every == 0:
            curves.extend(_rows("train", step / steps_per_epoch, step, window, assignment, cats))
            window = DropLosses.zeros(k, k, dev)
        # Python floats, summed in float64 in this order: the history of the loop before the kernel
        return Step(obj, n, {"loss": float(cls.detach()) * n, "droploss_term": float(reg) * n,
                             "objective": float(obj.detach()) * n, "acc": int((logits.argmax(1) == y).sum())})

    def report(stats: EpochStats) -> dict:
        """The epoch's last training curve point, Algorithm 1 on the test split and the history row."""
        if float(window.counts.sum()) > 0:
            curves.extend(_rows("train", step / steps_per_epoch, step, window, assignment, cats))
        ev = evaluate(model, data.test, k, ebs, dev, nw)
        curves.extend(_rows("test", stats.epoch, step, ev["droplosses"], assignment, cats))
        matched = ev["droplosses"].matched(torch.as_tensor(assignment, device=dev), kind).cpu().numpy()
        m = stats.means
        return {"epoch": stats.epoch, "train_loss": m["loss"], "train_droploss_term": m["droploss_term"],
                "train_objective": m["objective"], "train_acc": m["acc"], "test_loss": ev["loss"],
                "test_acc": float((ev["pred"] == data.test.y).mean()), "test_min_droploss": float(matched.min()),
                "test_mean_droploss": float(matched.mean()), "lr": stats.lr, "assignment": assignment.tolist()}

    if v["matching"] in ("initial", "em"):
        do_match(1)
    ev = evaluate(model, data.test, k, ebs, dev, nw)
    curves.extend(_rows("test", 0, 0, ev["droplosses"], assignment, cats))
    t_start = time.perf_counter()
    fitted = fit(model, objective, EpochData(lambda rng: data.train.batches(bs, rng, dev, nw), steps_per_epoch),
                 settings, report=report, desc=desc, on_epoch_start=start_epoch)
    train_seconds = time.perf_counter() - t_start
    final = evaluate(model, data.test, k, ebs, dev, nw, activations=True)
    return {"model": model, "kwargs": kwargs, "variant": v, "training": cfg, "history": fitted.history,
            "curves": curves, "matchings": matchings, "assignment": assignment, "final": final,
            "train_seconds": train_seconds, "epoch_seconds": fitted.epoch_seconds, "device": str(dev)}


def activation_table(act_sums: np.ndarray, counts: np.ndarray, categories: list[str]) -> pd.DataFrame:
    """Figure 2's numbers: per (category, neuron) the sum and mean of the neuron's activation over the
    category's test examples, each normalised over categories within the neuron's column
    (``share_sum`` is the paper's "normalise under total sum of its activations"; ``share_mean`` divides
    by the category sizes first, so that frequent categories do not dominate)."""
    k = act_sums.shape[1]
    means = act_sums / np.maximum(counts, 1)[:, None]
    col_s = act_sums.sum(0, keepdims=True)
    col_m = means.sum(0, keepdims=True)
    share_s = np.divide(act_sums, col_s, out=np.zeros_like(act_sums), where=col_s != 0)
    share_m = np.divide(means, col_m, out=np.zeros_like(means), where=col_m != 0)
    rows = [{"category": c, "neuron": i, "n": int(counts[j]), "activation_sum": float(act_sums[j, i]),
             "activation_mean": float(means[j, i]), "share_sum": float(share_s[j, i]),
             "share_mean": float(share_m[j, i])} for j, c in enumerate(categories) for i in range(k)]
    return pd.DataFrame(rows)


def run_variant(data: XData, model_cfg: dict, train_cfg: dict, variant: dict, seed: int, device: str,
                outputs: dict, desc: str = "xnet", variant_name: str = "xnet") -> dict:
    """Train one variant and write ``outputs``: ``model`` (checkpoint), ``metrics`` (JSON), ``droploss``
    (curves, CSV), ``activations`` (Figure 2 numbers, CSV), ``plot`` (the variant's drop-loss curves,
    Figure 7's layout) and ``timing`` (JSON: ``train_seconds``, ``epoch_seconds``, ``device``; optional).
    Returns the metrics."""
    from .figures import plot_variant_curves

    res = train_xnet(data, model_cfg, train_cfg, variant, seed, device, desc)
    final, model, assignment = res["final"], res["model"], res["assignment"]
    dl: DropLosses = final["droplosses"]
    kind = res["variant"]["kind"]
    matched = dl.matched(torch.as_tensor(assignment, device=dl.sums.device), kind).cpu().numpy()
    metrics = classification_metrics(data.test.y, final["pred"], data.classes)
    acts = activation_table(final["activation_sums"], dl.counts.cpu().numpy(), data.categories)
    metrics.update({
        "dataset": data.dataset, "variant": variant_name, **{k: res["variant"][k] for k in DEFAULT_VARIANT},
        "test_loss": final["loss"], "categories": data.categories, "classes": data.classes,
        "assignment": [int(i) for i in assignment],  # neuron of each category, in the order of "categories"
        "test_droploss_matrix": dl.matrix.cpu().numpy().round(6).tolist(),
        "test_droploss_full": dl.full.cpu().numpy().round(6).tolist(),
        "test_droploss_matched": {c: float(matched[j]) for j, c in enumerate(data.categories)},
        "test_min_droploss": float(matched.min()), "test_mean_droploss": float(matched.mean()),
        "activation_share_mean": acts.pivot(index="category", columns="neuron", values="share_mean")
        .loc[data.categories].to_numpy().round(6).tolist(),
        "history": res["history"], "matchings": res["matchings"], "training": res["training"],
        "epochs_run": len(res["history"]),
        "n_train": len(data.train), "category_rates": data.category_rates(), "device": res["device"], "seed": seed,
        "n_parameters": sum(p.numel() for p in model.parameters()), "note": data.note,
        "comparable_with_paper": data.comparable_with_paper,
        "data": {k: v for k, v in data.meta.items() if not k.startswith("tfidf")},
    })
    meta = {"classes": data.classes, "categories": data.categories, "dataset": data.dataset,
            "assignment": assignment.tolist(), "variant": res["variant"], "data": data.meta}
    save_xnet(outputs["model"], res["kwargs"], model, meta)
    curves = pd.DataFrame(res["curves"], columns=["source", "epoch", "step", "category", "neuron", "droploss", "n",
                                                  "matched"])
    with atomic_path(outputs["droploss"]) as tmp:
        curves.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(outputs["activations"]) as tmp:
        acts.to_csv(tmp, index=False, float_format="%.6g")
    if outputs.get("plot"):
        plot_variant_curves(curves, outputs["plot"], f"{data.dataset} / {variant_name}")
    write_json(outputs["metrics"], metrics)
    if outputs.get("timing"):  # wall times apart, so that metrics.json is byte-identical between runs
        write_json(outputs["timing"], {"train_seconds": round(res["train_seconds"], 1),
                                       "epoch_seconds": res["epoch_seconds"], "device": res["device"]})
    log.info("%s: test accuracy %.4f, matched test drop-losses %s, %.0fs", desc, metrics["accuracy"],
             {c: round(float(matched[j]), 4) for j, c in enumerate(data.categories)}, res["train_seconds"])
    return metrics


def output_paths(folder: str | Path) -> dict:
    """The files :func:`run_variant` writes, inside ``folder`` (``results/xnet/<dataset>/<variant>``)."""
    folder = Path(folder)
    return {"model": str(folder / "model.pt"), "metrics": str(folder / "metrics.json"),
            "droploss": str(folder / "droploss.csv"), "activations": str(folder / "activations.csv"),
            "plot": str(folder / "droploss.png"), "timing": str(folder / "timing.json")}
