"""Settings of a custom dataset derived from the data, and the check of every model's validation split.

``max_len: auto`` is ``length_factor`` x ``length_statistic`` of the training documents' lengths rounded to
ten words -- the report's rule ("we chose the length as 80, since the mean length of the documents was around
35", section 2.2; 2 x mean gives 80 for AG News and 400 for 20 Newsgroups); ``channels: auto`` is 512 for a
teacher and ``max(2, round(0.4 x classes))`` for a student (the report's students: 8 channels for 20
classes, 2 for 4); ``embedding.dim: auto`` is 300 (the report) for a training corpus of at least a million
tokens, else 100, ``embedding.min_count: auto`` 2, else 1, and ``embedding.epochs: auto`` as many passes as
give about five million training tokens (at least 5, at most 1000) -- fewer leave the vectors of a small
corpus all pointing one way. A model named ``student...`` (or with ``role: student``) gets the student
defaults (:data:`ROLE_DEFAULTS`), any other the teacher's.

The values are computed from the data's summary (:mod:`.summary`) by :func:`.summary.resolve_section`
before any job, which also checks every model's ``val_fraction`` against the training documents per class
(:func:`val_split_problem`).
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from ...errors import ConfigError

# role defaults of a custom dataset's models (quick scale, like config.yaml's ng20/agnews models)
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "teacher": {"channels": "auto", "kernel_size": 5, "hidden": [256], "dropout": 0.5, "max_len": "auto",
                "length_statistic": "mean", "length_factor": 2.0, "epochs": 15, "batch_size": 50, "lr": 0.002,
                "weight_decay": 0.0, "optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 0.5,
                "label_smoothing": 0.0, "grad_clip": None, "val_fraction": 0.1, "patience": 5, "min_steps": 1000},
    "student": {"channels": "auto", "kernel_size": 5, "hidden": [], "dropout": 0.0, "max_len": "auto",
                "length_statistic": "mean", "length_factor": 2.0, "epochs": 12, "batch_size": 50, "lr": 0.003,
                "weight_decay": 0.0, "optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 0.5,
                "label_smoothing": 0.0, "grad_clip": None, "val_fraction": 0.1, "patience": 4, "min_steps": 1000},
}
TEACHER_CHANNELS = 512
LARGE_CORPUS_TOKENS = 1_000_000
EMBEDDING_TOKEN_PASSES = 5_000_000  # tokens word2vec/fastText see in total with epochs: auto (see below)


# --- settings derived from the data -------------------------------------------------------------------
def _statistic(summary: dict, stat: str) -> float:
    length = summary["train_length"]
    if stat == "mean":
        return float(length["mean"])
    if stat == "median":
        return float(length["percentiles"][50])
    m = re.fullmatch(r"p(\d{1,3})", stat)
    if not m or int(m.group(1)) > 100:
        raise ConfigError(f"length_statistic {stat!r}: use mean, median or pNN (a percentile, p0..p100)")
    return float(length["percentiles"][int(m.group(1))])


def auto_max_len(summary: dict, statistic: str = "mean", factor: float = 2.0) -> int:
    """``factor`` x ``statistic`` of the training lengths, rounded to the nearest ten words (at least 10)."""
    value = factor * _statistic(summary, statistic)
    return max(10, int(math.floor(value / 10.0 + 0.5)) * 10)


def auto_channels(role: str, n_classes: int) -> int:
    """Teacher: 512; student: ``max(2, round(0.4 x classes))`` (the report: 8 for 20 classes, 2 for 4)."""
    if role == "student":
        return max(2, int(math.floor(0.4 * n_classes + 0.5)))
    return TEACHER_CHANNELS


def model_role(model: str, cfg: dict) -> str:
    return cfg.get("role") or ("student" if model.startswith("student") else "teacher")


def resolve_models(name: str, models: dict, summary: dict) -> tuple[dict, list[str]]:
    """Fill role defaults and replace ``auto`` by values derived from the data; returns (models, notes)."""
    out, notes = {}, []
    for model, cfg in models.items():
        role = model_role(model, cfg)
        m = {**copy.deepcopy(ROLE_DEFAULTS[role]), **copy.deepcopy(cfg), "role": role}
        if m["max_len"] == "auto":
            m["max_len"] = auto_max_len(summary, m["length_statistic"], float(m["length_factor"]))
            notes.append(f"{name}.models.{model}.max_len: auto -> {m['max_len']} ({m['length_factor']:g} x "
                         f"{m['length_statistic']} training length "
                         f"{_statistic(summary, m['length_statistic']):.1f}, rounded to ten)")
        if m["channels"] == "auto":
            m["channels"] = auto_channels(role, summary["n_classes"])
            notes.append(f"{name}.models.{model}.channels: auto -> {m['channels']} ({role}, "
                         f"{summary['n_classes']} classes)")
        out[model] = m
    return out, notes


def auto_embedding_epochs(train_tokens: int) -> int:
    """Passes over the training corpus so that word2vec/fastText see about ``EMBEDDING_TOKEN_PASSES`` tokens
    (at least 5, gensim's default; at most 1000): on a small corpus a few passes leave every vector
    pointing the same way (cosine ~1 between any two words) and, centred, along one direction (effective
    rank ~1): the classifier cannot learn. Measured on a 1,200-document, 84,000-token table (6 classes):
    fastText with 6 passes (half a million tokens, the earlier rule) effective rank 1.1 and a teacher at
    chance; with 60 passes (five million) effective rank 30 and the teacher at 91 %."""
    return int(min(1000, max(5, math.ceil(EMBEDDING_TOKEN_PASSES / max(train_tokens, 1)))))


def resolve_embedding(name: str, embedding: dict, summary: dict) -> tuple[dict, list[str]]:
    """Replace ``auto`` in ``dim``, ``min_count`` and ``epochs`` by values derived from the corpus size."""
    emb, notes = copy.deepcopy(embedding), []
    tokens = summary["train_tokens"]
    large = tokens >= LARGE_CORPUS_TOKENS
    derived = {"dim": 300 if large else 100, "min_count": 2 if large else 1, "epochs": auto_embedding_epochs(tokens)}
    for key, value in derived.items():
        if emb.get(key, "auto") == "auto":
            emb[key] = value
            notes.append(f"{name}.embedding.{key}: auto -> {value} ({tokens:,} training tokens)")
    return emb, notes


# --- the stratified validation split ------------------------------------------------------------------
def val_split_problem(counts: dict[str, int], fraction: float) -> str | None:
    """Why the stratified validation split of training (``xaipipe.train.val_split``: scikit-learn's
    ``train_test_split(stratify=labels, test_size=fraction)``) is impossible for these training documents
    per class, or None. The conditions are scikit-learn's: every class needs two documents, and both parts
    must be able to hold every class."""
    fraction = float(fraction or 0)
    present = {c: int(n) for c, n in counts.items() if n > 0}
    if not fraction or not present:
        return None
    single = [c for c, n in present.items() if n < 2]
    if single:
        few = ", ".join(f"{c!r}" for c in single[:5]) + (f" and {len(single) - 5} more" if len(single) > 5 else "")
        return (f"class {few} {'has' if len(single) == 1 else 'have'} only 1 training document; the stratified "
                f"validation split (val_fraction = {fraction:g}) needs at least 2 per class")
    n, k = sum(present.values()), len(present)
    n_val = math.ceil(fraction * n)
    if n_val < k or n - n_val < k:
        part = "validation" if n_val < k else "training"
        size = n_val if n_val < k else n - n_val
        return (f"val_fraction = {fraction:g} of {n} training documents leaves a {part} part of {size} "
                f"document(s), fewer than the {k} classes a stratified split puts in each part")
    return None


def check_val_splits(name: str, models: dict, summary: dict) -> None:
    """Every model's ``val_fraction`` against the training documents per class (before any job: otherwise
    training stops with a scikit-learn traceback after data, embedding and upstream jobs ran)."""
    counts = summary.get("train_class_counts")
    if counts is None:
        return
    per_class = {str(c): n for c, n in zip(summary["classes"], counts)}
    for model, cfg in models.items():
        problem = val_split_problem(per_class, cfg.get("val_fraction", 0.1))
        if problem:
            raise ConfigError(f"config: {name}.models.{model}: {problem}; add training documents (or drop the "
                              f"class), or set {name}.models.{model}.val_fraction: 0 (no validation split, "
                              f"no early stopping)")


__all__ = ["EMBEDDING_TOKEN_PASSES", "LARGE_CORPUS_TOKENS", "ROLE_DEFAULTS", "TEACHER_CHANNELS", "auto_channels",
           "auto_embedding_epochs", "auto_max_len", "check_val_splits", "model_role", "resolve_embedding", "resolve_models",
           "val_split_problem"]
