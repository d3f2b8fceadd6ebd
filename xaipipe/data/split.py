"""Stratified, seeded selection of indices: the one home of every split of the pipeline. A subset of one
split (:func:`stratified_subset`, ``max_train_docs``/``max_test_docs``), a train/test hold-out of one file
(:func:`split_stratified`, the AG News re-split and a custom table's ``test_fraction``), the validation
split of every trained model (:func:`val_split`), and the scikit-learn-drawn variants of the MNIST
distillation and XDistillation (:func:`sklearn_stratified_subset`, :func:`lenient_val_split`), which draw
other indices and so stay separate. Shared by :mod:`.prepare` and :mod:`.custom`, so neither imports the
other for it. (The scikit-learn variants are kept beside the others, not merged into them, so that no
study's results change.)"""

from __future__ import annotations

import numpy as np


def stratified_subset(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of a stratified, seeded subset of size ``n`` (all indices, sorted, when ``n`` is falsy
    or not smaller than the data). Every class keeps at least one document where possible."""
    labels = np.asarray(labels)
    if not n or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    quota = np.maximum(quota, np.minimum(1, counts))
    # distribute the remainder to the classes with the largest fractional parts
    while quota.sum() < n:
        frac = counts / counts.sum() * n - quota
        frac[quota >= counts] = -np.inf
        quota[int(np.argmax(frac))] += 1
    while quota.sum() > n:
        quota[int(np.argmax(quota))] -= 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))


def split_stratified(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of indices into (train, test)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    return np.sort(tr), np.sort(te)


def val_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) indices holding out a stratified, seeded ``fraction`` of ``y`` (none when
    0): the validation split of every model trained by the pipeline's text, image and RNN stages."""
    if not fraction:
        return np.arange(len(y)), np.array([], dtype=np.int64)
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, va = train_test_split(idx, test_size=fraction, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(va)


def sklearn_stratified_subset(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``n`` items drawn by scikit-learn's ``train_test_split`` (all
    when ``n`` is None or at least ``len(y)``): stratified by class when every class has at least two items
    and ``n`` is at least the number of classes, else a plain random sample. XDistillation's subsets; other
    indices than :func:`stratified_subset` for the same seed; the MNIST distillation's subsets too (MNIST
    always stratifies)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    strat = y if n >= (counts > 0).sum() and counts[counts > 0].min() >= 2 else None
    keep, _ = train_test_split(idx, train_size=int(n), stratify=strat, random_state=seed)
    return np.sort(keep)


def lenient_val_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) indices holding out ``fraction`` of ``y`` (none when 0). Stratified by
    class, with the indices of :func:`val_split`, when every class has at least two items and
    the hold-out rounds to at least one item per class; else a plain random split (where ``val_split``
    always stratifies, and fails on such labels). XDistillation's hold-outs."""
    if not fraction:
        return np.arange(len(y)), np.array([], dtype=np.int64)
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    strat = y if counts[counts > 0].min() >= 2 and int(round(fraction * len(y))) >= (counts > 0).sum() else None
    tr, va = train_test_split(idx, test_size=fraction, stratify=strat, random_state=seed)
    return np.sort(tr), np.sort(va)


__all__ = ["lenient_val_split", "sklearn_stratified_subset", "split_stratified", "stratified_subset", "val_split"]
