"""Stratified, seeded selection of document indices: a subset of one split (:func:`stratified_subset`,
``max_train_docs``/``max_test_docs``) and a train/test hold-out of one file (:func:`split_stratified`, the AG
News re-split and a custom table's ``test_fraction``). Shared by :mod:`.prepare` and :mod:`.custom`, so
neither imports the other for it."""

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


__all__ = ["split_stratified", "stratified_subset"]
