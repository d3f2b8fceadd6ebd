"""Sequential MNIST / Fashion-MNIST (Chormai 2018, sections 4.1-4.2, Table 4.1).

Every 28 x 28 image is split column-wise into ``SEQ`` blocks ``x_t`` of 28 x (28 / SEQ) pixels
(``SEQ = 1, 4, 7, 14``: 28 x 28, 28 x 7, 28 x 4, 28 x 2) that a recurrent cell reads left to right.

Raw files: MNIST and Fashion-MNIST come as the four official IDX files each
(:data:`xaipipe.data.catalog.MNIST`, :data:`xaipipe.data.catalog.FASHION_MNIST`), resolved raw folder ->
mirror -> download with checksums (:func:`xaipipe.data.sources.resolve`). Prepared splits are ``.npz``
files with ``x`` (uint8, N x 28 x 28) and ``y`` (int64), the format of the pipeline's
``results/mnist/data/{train,test}.npz``.

Pixels: ``x / 255`` mapped linearly onto ``pixel_range`` (default ``[0, 1]``); the same interval is the
box ``[l, h]`` of the z^beta rule at the input (Table 3.1: ``l <= 0 <= h``), so every pixel lies inside it.
The draft does not state the scaling; the thesis's public code used ``[-1, 1]`` (``pixel_range: [-1, 1]``).
On MNIST ``[0, 1]`` trains faster with the section 4.4 initialisation (2 epochs on 9,000 images, Adam 1e-3:
Deep-1 0.928 vs 0.885, Deep-7 0.934 vs 0.906 test accuracy).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.catalog import FASHION_MNIST, MNIST
from ..data.mnist import read_idx
from ..data.split import stratified_subset
from ..data.sources import DatasetSources, MIRROR_ENV, is_offline, mirror_root, resolve
from ..errors import ConfigError, XaipipeError
from ..io import atomic_path, write_json

log = logging.getLogger(__name__)

SOURCES: dict[str, DatasetSources] = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}

CLASSES: dict[str, list[str]] = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
}

_SPLIT_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


# --- sequences ---------------------------------------------------------------------------------------


def step_width(width: int, seq: int) -> int:
    """Columns per step (Table 4.1); ``seq`` must divide the image width."""
    if seq < 1 or width % seq:
        raise ConfigError(f"sequence length {seq} does not divide the image width {width}; use one of "
                          f"{[s for s in range(1, width + 1) if width % s == 0]} (the thesis: 1, 4, 7, 14)")
    return width // seq


def split_columns(images: torch.Tensor, seq: int) -> torch.Tensor:
    """``(N, H, W)`` images -> ``(N, SEQ, H, W / SEQ)`` column blocks, left to right (Figure 4.3)."""
    n, h, w = images.shape
    width = step_width(w, seq)
    return images.reshape(n, h, seq, width).permute(0, 2, 1, 3)


def merge_columns(steps: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_columns`: ``(N, SEQ, H, w)`` -> ``(N, H, SEQ * w)``."""
    n, t, h, w = steps.shape
    return steps.permute(0, 2, 1, 3).reshape(n, h, t * w)


def scale_pixels(x: np.ndarray | torch.Tensor, pixel_range: Sequence[float] = (0.0, 1.0)) -> torch.Tensor:
    """uint8 pixels -> float32 in ``[low, high]`` (``0 -> low``, ``255 -> high``)."""
    low, high = (float(v) for v in pixel_range)
    if not low < high:
        raise ConfigError(f"rnn.pixel_range must be [low, high] with low < high, got {list(pixel_range)}")
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32) / 255.0
    return low + (high - low) * x


# --- prepared splits ---------------------------------------------------------------------------------


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(x uint8 (N, 28, 28), y int64)`` of a prepared ``.npz`` split."""
    path = Path(path)
    if not path.is_file():
        raise XaipipeError(f"prepared split {path} not found: run the data rule first (snakemake {path})")
    with np.load(path) as z:
        if "x" not in z or "y" not in z:
            raise XaipipeError(f"{path} has no 'x' / 'y' arrays; delete it and rerun the data rule")
        x, y = z["x"], z["y"].astype(np.int64)
    if x.ndim != 3 or x.dtype != np.uint8 or len(x) != len(y):
        raise XaipipeError(f"{path}: expected x uint8 (N, H, W) and N labels, got x {x.dtype} {x.shape}, "
                           f"{len(y)} labels")
    return x, y


def subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded subset of at most ``n`` samples (all when ``n`` is None); also returns the
    kept indices into the full split."""
    keep = stratified_subset(y, n, seed)
    return x[keep], y[keep], keep


# --- raw files ---------------------------------------------------------------------------------------


def sources(dataset: str) -> DatasetSources:
    try:
        return SOURCES[dataset]
    except KeyError:
        raise ConfigError(f"unknown RNN dataset {dataset!r}; known: {sorted(SOURCES)}") from None


def missing_offline(dataset: str, raw_dir: str | Path, mirror: str | None) -> list[str]:
    """Raw files of ``dataset`` found neither in ``<raw_dir>/<dataset>/`` nor in the mirror's known
    sub-folders (no checksums: a cheap test for planning the workflow; the fetch rule verifies)."""
    spec = sources(dataset)
    raw = Path(raw_dir) / spec.name
    root = mirror_root(mirror)
    missing = []
    for f in spec.files:
        if (raw / f.name).is_file():
            continue
        if root is not None and any((root / rel).is_file() for rel in f.mirror_names):
            continue
        missing.append(f.name)
    return missing


def availability(dataset: str, raw_dir: str | Path, mirror: str | None, offline: bool) -> tuple[bool, str]:
    """Can the workflow obtain ``dataset``? Online: yes (the fetch rule downloads and verifies).
    Offline: only when every raw file is in the raw folder or the mirror; the message says what to do."""
    if not is_offline(offline):
        return True, ""
    try:
        missing = missing_offline(dataset, raw_dir, mirror)
    except XaipipeError as exc:  # e.g. a mirror folder that does not exist: the fetch job reports it
        return True, str(exc)
    if not missing:
        return True, ""
    spec = sources(dataset)
    where = f"{Path(raw_dir) / spec.name}/"
    mirror_hint = (f" or a sub-folder {spec.files[0].mirror_names[0].split('/')[0]}/ of the mirror "
                   f"(config data_mirror or {MIRROR_ENV})")
    return False, (f"rnn: skipping dataset {dataset!r}: offline and not mirrored (missing "
                   f"{', '.join(missing)}). Put the official files into {where}{mirror_hint}, allow "
                   f"downloads (offline: false), or remove it from rnn.datasets.")


def fetch(dataset: str, raw_dir: str, mirror: str | None = None, offline: bool = False,
          verify: bool = True) -> dict:
    """Manifest of the raw IDX files (raw folder -> mirror -> download, every file checksummed)."""
    return resolve(sources(dataset), raw_dir, mirror=mirror, offline=offline, verify=verify)


def prepare(dataset: str, manifest: dict, out_train: str, out_test: str, out_stats: str) -> dict:
    """Decode the IDX files and write ``{train,test}.npz`` (``x`` uint8 N x 28 x 28, ``y`` int64) and
    ``stats.json``. No subsetting here: ``rnn.max_train`` / ``max_test`` act at training time."""
    items = manifest["items"]
    classes = CLASSES[dataset]
    stats: dict = {"dataset": dataset, "classes": classes, "n_classes": len(classes),
                   "verified": manifest.get("verified", True)}
    for split, path in (("train", out_train), ("test", out_test)):
        img_name, lab_name = _SPLIT_FILES[split]
        x, y = read_idx(items[img_name]["path"]), read_idx(items[lab_name]["path"]).astype(np.int64)
        if x.ndim != 3 or len(x) != len(y):
            raise XaipipeError(f"{dataset} {split}: {x.shape} images but {len(y)} labels")
        if y.min() < 0 or y.max() >= len(classes):
            raise XaipipeError(f"{dataset} {split}: labels outside 0..{len(classes) - 1}")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, x=x.astype(np.uint8), y=y)
        stats[split] = {"n_docs": int(len(y)),
                        "docs_per_class": {classes[c]: int(n) for c, n in zip(*np.unique(y, return_counts=True))}}
    write_json(out_stats, stats)
    log.info("%s: %d train / %d test images", dataset, stats["train"]["n_docs"], stats["test"]["n_docs"])
    return stats
