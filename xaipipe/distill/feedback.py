"""Feedback distillation and self-feedback fine-tuning for text (report sections 7.1, 7.2.1, 7.2.2, 8).

A trained model is fine-tuned on mini-batches in which some copies of every document keep only (positive
feedback) or lose (negative feedback) the words that an explanation method ranks highest:

* **Important words** of a document: its top ``k`` words by relevance (report: LRP, ``k = 6`` for
  distillation, 3 / 5 for self-feedback), :func:`top_k_mask`. For feedback *distillation* (``source:
  teacher``) the relevance is the fixed teacher's, computed once for the training set
  (:func:`compute_relevance`, stored by :func:`relevance_stage`); for *self-feedback* (``source: self``)
  it is the fine-tuned model's own, recomputed on every mini-batch with the current weights
  (:class:`SelfRelevance`), as in section 8.1 ("for each batch, we compute the relevance values on the
  modified network due to the previous gradient step"). Both use one batched explainer pass per batch
  (:func:`batch_relevance`), the target being the predicted class (``target: pred``) or the label.
* **Forced batch** (:func:`feedback_batch`, section 7.1): each of the ``B`` documents appears
  ``copies`` times (report: 8); in the first ``masked`` copies (report: 5) the words to drop become the
  zero vector (vocabulary id 0, the padding vector): positive = every word *outside* the important set,
  negative = the important words; the other ``copies - masked`` copies are the unchanged document. The
  loss is the mean cross-entropy over the ``B * copies`` rows. Section 7.1 reads 8 / 5 as "the input of
  the unimportant words multiplied by 3/8", done with zero vectors because "3/8-th of the original
  embedding might have drastically different meaning in embedding space". ``copies = masked = 1`` is
  the single-instance variant.
* **Schedule**: forced epochs alternate with normal ("unforced") epochs, or every epoch is forced, or
  none (plain fine-tuning, a control); see :class:`~.feedback_config.FeedbackVariant`.

The loop (:func:`finetune`, through the training kernel :func:`xaipipe.fitting.fit`) uses Adam / AdamW /
SGD with a constant learning rate, length-bucketed batches of ``batch_size`` unique documents (padded to
the batch's longest, at most ``max_len`` words; exact, the CNN masks padding out of its max-pool) and
records, per epoch, the loss and accuracy on the batches as trained (masked copies included), the accuracy
on the masked copies alone, the accuracy on the clean training documents and on the test split (epoch 0 =
the starting model). The wall times of the epochs and of their relevance computations go to
``timing.json``, apart from the history.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.split import stratified_subset
from ..errors import XaipipeError
from ..explain import get_explainer
from ..explain.base import Explainer
from ..explain.gradients import EmbeddedExplainer
from ..losses import LossInputs, Objective
from ..explain.stage import method_params
from ..fitting import EpochData, EpochStats, Settings, Step, fit
from ..io import atomic_path, load_torch, write_json
from ..models import load_checkpoint, save_checkpoint
from ..train import Split, bucket_batches, classification_metrics, encode, pad_batch, predict, resolve_device, set_seed
from .feedback_config import PUBLISHED, FeedbackVariant

log = logging.getLogger(__name__)

__all__ = [
    "FeedbackBatch",
    "SelfRelevance",
    "TeacherRelevance",
    "batch_relevance",
    "compute_relevance",
    "feedback_batch",
    "finetune",
    "has_dropout",
    "relevance_stage",
    "top_k_mask",
    "variant_stage",
]

#: a relevance source: ``(doc indices, tokens (B, L), lengths (B,), labels (B,)) -> relevance (B, L)``
RelevanceFn = Callable[[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# --- important words and forced batches ---------------------------------------------------------------
def top_k_mask(relevance: torch.Tensor, lengths: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``(B, L)``: the ``min(k, length)`` most relevant real words of each document.

    Padding (positions ``>= lengths``) and NaN relevance never rank above a real value; ties go to the
    earlier position (stable sort)."""
    b, width = relevance.shape
    valid = torch.arange(width, device=relevance.device)[None, :] < lengths.to(relevance.device)[:, None]
    rel = relevance.detach().to(torch.float64)
    rel = rel.masked_fill(~valid | torch.isnan(rel), float("-inf"))
    top = torch.sort(rel, dim=1, descending=True, stable=True).indices[:, : min(int(k), width)]
    mask = torch.zeros(b, width, dtype=torch.bool, device=relevance.device)
    mask.scatter_(1, top, True)
    return mask & valid


@dataclass
class FeedbackBatch:
    """The rows of a forced batch: ``copies`` consecutive rows per document (``doc`` = its row in the
    unique batch), the first ``masked`` of them with words zeroed (``masked_rows``); ``weights`` = how many
    copies a row stands for (all 1 unless compact)."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    masked_rows: torch.Tensor
    doc: torch.Tensor
    weights: torch.Tensor


def feedback_batch(tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, important: torch.Tensor,
                   mode: str, copies: int, masked: int, compact: bool = False) -> FeedbackBatch:
    """Repeat every document ``copies`` times and zero (id 0) the dropped words in ``masked`` copies.

    ``positive``: dropped = real words outside ``important``; ``negative``: dropped = ``important``.
    Lengths stay unchanged (a zeroed word is a zero vector inside the document, not padding).

    ``compact``: one row per distinct copy (the masked and the unchanged version) with weight ``masked``
    resp. ``copies - masked``; for a model without dropout the weighted mean loss has exactly the value
    and gradient of the mean over the ``copies`` rows (identical rows give identical terms), at a
    fraction of the cost (2 rows instead of 8 per document)."""
    if mode not in ("positive", "negative"):
        raise XaipipeError(f"feedback mode {mode!r}: use positive or negative")
    if not 0 <= masked <= copies:
        raise XaipipeError(f"feedback batch: masked = {masked} must be between 0 and copies = {copies}")
    b, width = tokens.shape
    dev = tokens.device
    valid = torch.arange(width, device=dev)[None, :] < lengths.to(dev)[:, None]
    important = important.to(dev) & valid
    drop = (valid & ~important) if mode == "positive" else important
    if compact:
        kinds = [(True, masked)] * (masked > 0) + [(False, copies - masked)] * (copies > masked)
        per_doc = torch.tensor([k for k, _ in kinds], device=dev)
        weights = torch.tensor([float(w) for _, w in kinds], device=dev).repeat(b)
    else:
        per_doc = torch.arange(copies, device=dev) < masked
        weights = torch.ones(b * copies, device=dev)
    doc = torch.arange(b, device=dev).repeat_interleave(len(per_doc))
    masked_rows = per_doc.repeat(b)
    out = tokens[doc].masked_fill(drop[doc] & masked_rows[:, None], 0)
    return FeedbackBatch(out, lengths[doc], labels[doc], masked_rows, doc, weights)


def has_dropout(model: nn.Module) -> bool:
    """Whether training mode makes copies of one document differ (active dropout)."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


# --- relevance ----------------------------------------------------------------------------------------
def batch_relevance(explainer: Explainer, tokens: torch.Tensor, lengths: torch.Tensor,
                    target: torch.Tensor) -> torch.Tensor:
    """Word relevance ``(B, L)`` of a padded batch for ``target`` (one class per document), computed on the
    explainer's model in eval mode (dropout off; the caller's mode is restored).

    Explainers that work on the padded embedded batch (LRP, gradients) take one pass for the whole batch;
    any other registered method goes through its ``attribute`` call. Padding positions hold ``-inf``."""
    model = explainer.model
    was_training = model.training
    model.eval()
    try:
        width = tokens.shape[1]
        if isinstance(explainer, EmbeddedExplainer):
            with torch.no_grad():
                x = model.embed(tokens)
            rel = explainer.attribute_embedded(x, lengths, target.to(x.device))
            rel = (rel[0] if isinstance(rel, tuple) else rel).detach()[:, :width].to(torch.float64)
        else:
            docs = [tokens[b, :n].cpu().numpy() for b, n in enumerate(lengths.tolist())]
            exps = explainer.attribute(docs, [int(t) for t in target.tolist()])
            rel = torch.zeros(tokens.shape, dtype=torch.float64, device=tokens.device)
            for b, e in enumerate(exps):
                rel[b, : len(e.relevance)] = torch.as_tensor(e.relevance, dtype=torch.float64)
    finally:
        model.train(was_training)
    valid = torch.arange(width, device=rel.device)[None, :] < lengths.to(rel.device)[:, None]
    return rel.masked_fill(~valid, float("-inf"))


def _targets(model: nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
             target: str) -> torch.Tensor:
    if target == "label":
        return labels
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(tokens, lengths).argmax(1)
    finally:
        model.train(was_training)


class TeacherRelevance:
    """Precomputed relevance (one array per training document, in training order) as a relevance source."""

    def __init__(self, relevance: Sequence[np.ndarray]):
        self.relevance = [np.asarray(r, dtype=np.float64) for r in relevance]

    def __call__(self, idx, tokens, lengths, labels) -> torch.Tensor:
        out = torch.full(tokens.shape, float("-inf"), dtype=torch.float64)
        for row, i in enumerate(idx):
            r = self.relevance[int(i)][: tokens.shape[1]]
            out[row, : len(r)] = torch.from_numpy(r)
        return out.to(tokens.device)


class SelfRelevance:
    """The fine-tuned model's own relevance, recomputed for every batch on its current weights
    (section 8). ``calls`` counts the batches explained."""

    def __init__(self, explainer: Explainer, target: str = "pred"):
        self.explainer = explainer
        self.target = target
        self.calls = 0

    def __call__(self, idx, tokens, lengths, labels) -> torch.Tensor:
        self.calls += 1
        t = _targets(self.explainer.model, tokens, lengths, labels, self.target)
        return batch_relevance(self.explainer, tokens, lengths, t)


def build_explainer(model: nn.Module, relevance_cfg: dict, vocab: list[str], seed: int) -> Explainer:
    """The configured explainer (``{"method": name, **params}``, the explain stage's format)."""
    name, params = method_params(relevance_cfg, vocab, seed)
    return get_explainer(name, model, **params)


def compute_relevance(model: nn.Module, docs: Sequence[np.ndarray], labels: np.ndarray, relevance_cfg: dict,
                      vocab: list[str], target: str = "pred", seed: int = 0, batch_docs: int = 64,
                      device: torch.device | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Relevance of every word of ``docs`` (already truncated) for the model's predicted class or the
    label: ``(relevance arrays, targets, predictions)``, in ``docs`` order. Documents of similar length
    are explained together (``batch_docs`` per pass)."""
    device = device or torch.device("cpu")
    model.eval()
    explainer = build_explainer(model, relevance_cfg, vocab, seed)
    lengths = np.array([len(d) for d in docs])
    rel: list[np.ndarray | None] = [None] * len(docs)
    targets = np.zeros(len(docs), dtype=np.int64)
    preds = np.zeros(len(docs), dtype=np.int64)
    batches = bucket_batches(lengths, batch_docs, None)
    for idx in tqdm(batches, desc=f"relevance {relevance_cfg['method']}", mininterval=2.0):
        tokens, lens = pad_batch([docs[i] for i in idx])
        tokens, lens = tokens.to(device), lens.to(device)
        y = torch.from_numpy(np.asarray(labels)[idx]).to(device)
        pred = _targets(model, tokens, lens, y, "pred")
        t = y if target == "label" else pred
        r = batch_relevance(explainer, tokens, lens, t).cpu().numpy()
        for row, i in enumerate(idx):
            rel[i] = r[row, : lengths[i]].copy()
        targets[idx] = t.cpu().numpy()
        preds[idx] = pred.cpu().numpy()
    return rel, targets, preds  # type: ignore[return-value]


# --- the fine-tuning loop ------------------------------------------------------------------------------
def _evaluate(model: nn.Module, train: Split, test: Split, device: torch.device, max_len: int | None,
              eval_train: bool) -> dict:
    pred, loss = predict(model, test, 256, device, None)
    row = {"test_loss": loss, "test_acc": float((pred == test.y).mean())}
    if eval_train:
        tr_pred, _ = predict(model, train, 256, device, max_len)
        row["clean_train_acc"] = float((tr_pred == train.y).mean())
    return row


def finetune(model: nn.Module, train: Split, test: Split, variant: FeedbackVariant, relevance: RelevanceFn | None,
             device: torch.device, seed: int = 0, eval_train: bool = True, desc: str = "feedback",
             compact: bool | None = None, timing: dict | None = None) -> list[dict]:
    """Fine-tune ``model`` in place following ``variant``; returns one history row per epoch (epoch 0 = the
    starting model). ``relevance`` gives the word relevance of a batch (needed when an epoch is forced).

    The model trains through the kernel (:func:`xaipipe.fitting.fit`, constant learning rate); this study
    adds the forced batches, the loss and the row. ``timing`` (a dict, when given) receives the wall times,
    which the history leaves out so that it is byte-identical between runs: ``epoch_seconds`` (training and
    evaluation) and ``relevance_epoch_seconds`` (the relevance computations) of every epoch.

    ``compact`` (default: when the model has no active dropout, i.e. exactly): forced batches hold one
    weighted row per distinct copy instead of ``copies`` rows (see :func:`feedback_batch`). The history
    counts rows as the literal batch would (``rows`` = documents x copies in a forced epoch)."""
    if compact is None:
        compact = not has_dropout(model)
    if float(model.embedding[0].abs().max()) != 0.0:
        raise XaipipeError("feedback fine-tuning zeroes words with vocabulary id 0, but this model's row 0 is "
                           "not the zero vector; use a checkpoint trained by this pipeline (index 0 = <pad>)")
    if relevance is None and any(variant.forced(e) for e in range(1, variant.epochs + 1)):
        raise XaipipeError(f"variant {variant.name!r} has forced epochs but no relevance source was given")
    model.to(device)
    settings = Settings(epochs=variant.epochs, lr=variant.lr, optimizer=variant.optimizer,
                        weight_decay=variant.weight_decay, schedule="constant", seed=seed,
                        where=f"distill_feedback variant {variant.name}")
    max_len = variant.max_len
    lengths = np.array([len(s) if max_len is None else min(len(s), max_len) for s in train.x])
    history = [{"epoch": 0, "forced": False, **_evaluate(model, train, test, device, max_len, eval_train)}]
    log.info("%s epoch 0: test_acc %.4f", desc, history[0]["test_acc"])
    # the masked copies' accuracy is a ratio of two sums (the kernel hands ``report`` means over all rows)
    # and the relevance time is a wall time: both are tallied here, per epoch
    tally: dict[str, float] = {}
    relevance_seconds: list[float] = []

    def start_epoch(e: int) -> None:
        tally.update(masked_rows=0.0, masked_correct=0.0, relevance_seconds=0.0)

    terms = Objective({"ce": 1.0})  # cross-entropy, weighted per row (compact forced batches)

    def objective(model: nn.Module, idx: np.ndarray, e: int) -> Step:
        tokens, lens = pad_batch([train.x[i] for i in idx], max_len)
        tokens, lens = tokens.to(device), lens.to(device)
        y = torch.from_numpy(train.y[idx]).to(device)
        is_masked = None
        if variant.forced(e):
            t1 = time.perf_counter()
            important = top_k_mask(relevance(idx, tokens, lens, y), lens, variant.k)
            tally["relevance_seconds"] += time.perf_counter() - t1
            fb = feedback_batch(tokens, lens, y, important, variant.mode, variant.copies, variant.masked, compact)
            tokens, lens, y, is_masked, w = fb.tokens, fb.lengths, fb.labels, fb.masked_rows, fb.weights
        else:
            w = torch.ones(len(y), device=device)
        logits = model(tokens, lens)
        loss, _ = terms(LossInputs(logits=logits, labels=y, weights=w))  # the weighted ce term
        hit = (logits.detach().argmax(1) == y).to(w.dtype) * w
        if is_masked is not None:
            tally["masked_rows"] += float(w[is_masked].sum())
            tally["masked_correct"] += float(hit[is_masked].sum())
        n = float(w.sum())
        return Step(loss, n, {"loss": float(loss.detach()) * n, "acc": float(hit.sum())})

    def report(stats: EpochStats) -> dict:
        relevance_seconds.append(tally["relevance_seconds"])
        masked_rows = tally["masked_rows"]
        row = {"epoch": stats.epoch, "forced": variant.forced(stats.epoch), "train_loss": stats.means["loss"],
               "train_acc": stats.means["acc"],
               "masked_acc": tally["masked_correct"] / masked_rows if masked_rows else float("nan"),
               "rows": int(stats.seen), "lr": stats.lr}
        return {**row, **_evaluate(model, train, test, device, max_len, eval_train)}

    data = EpochData(lambda rng: bucket_batches(lengths, variant.batch_size, rng),
                     math.ceil(len(train) / variant.batch_size))
    fitted = fit(model, objective, data, settings, report=report, on_epoch_start=start_epoch,
                 desc=lambda e: f"{desc} epoch {e}/{variant.epochs}{' (forced)' if variant.forced(e) else ''}")
    if timing is not None:
        timing.update(epoch_seconds=fitted.epoch_seconds, relevance_epoch_seconds=relevance_seconds)
    return history + fitted.history


# --- stage entry points ---------------------------------------------------------------------------------
def _encoded_train(train_path: str, vocab: list[str], max_train_docs: int | None, seed: int,
                   max_len: int | None) -> tuple[pd.DataFrame, list[np.ndarray], np.ndarray]:
    """The (subset of the) training split encoded with ``vocab``, documents truncated to ``max_len``."""
    df = pd.read_parquet(train_path)
    keep = stratified_subset(df["label"].to_numpy(), max_train_docs, seed)
    df = df.iloc[keep].reset_index(drop=True)
    x, _ = encode(df["tokens"], {w: i for i, w in enumerate(vocab)})
    if max_len is not None:
        x = [s[:max_len] for s in x]
    return df, x, df["label"].to_numpy()


def relevance_stage(model_path: str, train_path: str, spec: dict, device: str, out_parquet: str, out_info: str,
                    batch_docs: int = 64) -> dict:
    """Precompute the teacher's relevance of every (subset) training document, truncated to the
    fine-tuned model's ``max_len`` (``spec`` from :func:`~.feedback_config.relevance_spec`).

    ``relevance.parquet``: ``id, label, target, pred, n_words, relevance`` (one value per known word, in
    word order); the JSON file records the spec, timing and the teacher's training accuracy."""
    seed = int(spec["seed"])
    set_seed(seed, device=device)
    dev = resolve_device(device)
    model, meta = load_checkpoint(model_path, map_location=dev)
    vocab = meta.get("vocab")
    if not vocab:
        raise XaipipeError(f"{model_path} has no vocabulary: feedback distillation needs a text checkpoint")
    df, x, y = _encoded_train(train_path, vocab, spec["max_train_docs"], seed, spec["max_len"])
    t0 = time.perf_counter()
    rel, targets, preds = compute_relevance(model, x, y, spec["relevance"], vocab, spec["target"], seed,
                                            batch_docs, dev)
    seconds = time.perf_counter() - t0
    out = pd.DataFrame({"id": df["id"].astype(str), "label": y, "target": targets, "pred": preds,
                        "n_words": [len(s) for s in x], "relevance": [r.astype(np.float32) for r in rel]})
    with atomic_path(out_parquet) as tmp:
        out.to_parquet(tmp, index=False)
    info = {"spec": spec, "n_docs": len(out),  # the wall time is logged, not written: the file is byte-identical
            "teacher_train_accuracy": float((preds == y).mean())}
    write_json(out_info, info)
    log.info("teacher relevance (%s) of %d training documents in %.1fs", spec["relevance"]["method"], len(out), seconds)
    return info


def _load_teacher_relevance(path: str, df: pd.DataFrame, x: list[np.ndarray]) -> TeacherRelevance:
    rel = pd.read_parquet(path)
    same = len(rel) == len(df) and (rel["id"].astype(str).to_numpy() == df["id"].astype(str).to_numpy()).all() \
        and (rel["n_words"].to_numpy() == np.array([len(s) for s in x])).all()
    if not same:
        raise XaipipeError(f"{path} holds relevance for other documents than this variant trains on (training "
                           f"subset, vocabulary or max_len differ); delete it and rerun its rule")
    return TeacherRelevance(list(rel["relevance"]))


def variant_stage(model_path: str, train_path: str, test_path: str, variant: FeedbackVariant, block: dict,
                  stats: dict, seed: int, device: str, outputs: dict, relevance_path: str | None = None,
                  desc: str = "feedback") -> dict:
    """Run one variant: fine-tune the checkpoint at ``model_path`` and write ``outputs`` (``history``
    csv, ``metrics`` json, ``model`` checkpoint, ``curve`` png and, when named, ``timing`` json: the wall
    times, apart from the history and metrics, which are byte-identical between runs). ``block``: the dataset's
    ``distill_feedback`` settings (``max_train_docs``, ``max_test_docs``, ``eval_train``); ``stats``: the
    dataset's ``stats.json`` (classes, comparability note)."""
    from .feedback_report import plot_variant_curve

    set_seed(seed, device=device)
    dev = resolve_device(device)
    model, meta = load_checkpoint(model_path, map_location=dev)
    vocab = meta.get("vocab")
    if not vocab:
        raise XaipipeError(f"{model_path} has no vocabulary: feedback fine-tuning needs a text checkpoint")
    df, x, y = _encoded_train(train_path, vocab, variant.train_docs(block), seed, variant.max_len)
    te = pd.read_parquet(test_path)
    te = te.iloc[stratified_subset(te["label"].to_numpy(), block.get("max_test_docs"), seed + 1)]
    x_te, _ = encode(te["tokens"], {w: i for i, w in enumerate(vocab)})
    train, test = Split(x, y), Split(x_te, te["label"].to_numpy())
    uses_relevance = any(variant.forced(e) for e in range(1, variant.epochs + 1))
    source: RelevanceFn | None = None
    if uses_relevance and variant.source == "teacher":
        if relevance_path is None:
            raise XaipipeError(f"variant {variant.name!r} (source: teacher) needs the teacher's relevance file")
        source = _load_teacher_relevance(relevance_path, df, x)
    elif uses_relevance:
        source = SelfRelevance(build_explainer(model, variant.relevance, vocab, seed), variant.target)
    compact = not has_dropout(model)
    t0 = time.perf_counter()
    timing: dict = {}
    history = finetune(model, train, test, variant, source, dev, seed, bool(block.get("eval_train", True)), desc,
                       compact, timing)
    seconds = time.perf_counter() - t0
    pred, test_loss = predict(model, test, 256, dev, None)
    classes = meta.get("classes") or stats.get("classes")
    metrics = classification_metrics(test.y, pred, classes)
    start, final = history[0]["test_acc"], metrics["accuracy"]
    best = max(history[1:], key=lambda r: r["test_acc"])
    pub = PUBLISHED.get(variant.paper) if variant.paper else None
    metrics.update({
        "variant": variant.to_dict(), "start_accuracy": start, "change": final - start, "test_loss": test_loss,
        "peak_accuracy": best["test_acc"], "peak_epoch": best["epoch"],
        "forced_epochs": [r["epoch"] for r in history[1:] if r["forced"]], "n_train": len(train),
        "self_relevance_batches": getattr(source, "calls", None), "compact_batches": compact,
        "device": str(dev), "seed": seed,
        "published": pub, "comparable_with_paper": bool(stats.get("comparable_with_paper", True)),
        **({"note": stats["note"]} if "note" in stats else {}),
    })
    ckpt = load_torch(model_path)  # the base model's arch and kwargs (read safely above by load_checkpoint)
    save_checkpoint(outputs["model"], ckpt["arch"], dict(ckpt["kwargs"]), model,
                    {**meta, "feedback": variant.to_dict(), "base_model": str(model_path)})
    hist = pd.DataFrame(history)
    with atomic_path(outputs["history"]) as tmp:
        hist.to_csv(tmp, index=False, float_format="%.6g")
    plot_variant_curve(hist, outputs["curve"], f"{desc}: {variant.mode} feedback ({variant.source}), "
                       f"{variant.copies}x{variant.masked}, k={variant.k}, {variant.schedule}")
    write_json(outputs["metrics"], metrics)
    if outputs.get("timing"):
        write_json(outputs["timing"], {
            "train_seconds": round(seconds, 1), "epoch_seconds": timing["epoch_seconds"],
            "relevance_seconds": round(sum(timing["relevance_epoch_seconds"]), 1),
            "relevance_epoch_seconds": [round(x, 2) for x in timing["relevance_epoch_seconds"]],
            "device": str(dev)})
    log.info("%s: test accuracy %.4f -> %.4f (%+.4f) in %.0fs", desc, start, final, final - start, seconds)
    return metrics
