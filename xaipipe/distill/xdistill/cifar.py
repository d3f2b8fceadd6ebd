"""CIFAR-10 for the XDistillation paper configuration (Krizhevsky 2009; section IV-A: 50,000 training and
10,000 test images, 32x32x3, 10 classes).

The raw file is the official ``cifar-10-python.tar.gz`` (170,498,071 bytes, md5
``c58f30108f718f92721af3b95e74349a`` as published on the CIFAR page, sha256 ``6d958be0...5c001ce``), found
like every other raw file of the project (:func:`xaipipe.data.sources.resolve`): the raw folder
``<raw_dir>/cifar10/``, then a mirror (top level, ``cifar10/``, ``cifar-10/`` or torchvision's
``CIFAR10/raw/``), then a download from the official URL; always checksum-verified.

The archive holds ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``: Python pickles of
dicts with ``b"data"`` (uint8, N x 3072, channel-major rows) and ``b"labels"``. They are read straight from
the archive with a restricted unpickler that only rebuilds NumPy arrays (no other code can run), and
written as ``train.npz``/``test.npz`` with ``x`` uint8 ``(N, 32, 32, 3)`` and ``y`` int64.
"""

from __future__ import annotations

import io
import logging
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ...data.sources import DatasetSources, FileSpec, resolve
from ...errors import XaipipeError
from ...io import atomic_path, write_json

log = logging.getLogger(__name__)

ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10 = DatasetSources(
    name="cifar10",
    files=(
        FileSpec(
            name=ARCHIVE,
            md5="c58f30108f718f92721af3b95e74349a",
            sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            mirror_names=(ARCHIVE, f"cifar10/{ARCHIVE}", f"cifar-10/{ARCHIVE}", f"CIFAR10/raw/{ARCHIVE}",
                          f"cifar10/raw/{ARCHIVE}"),
            size=170498071,
        ),
    ),
)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds only NumPy arrays, dtypes and plain containers."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR batch refers to {module}.{name}, which is not allowed")


def _load_batch(tar: tarfile.TarFile, member: str) -> dict:
    for m in tar.getmembers():
        if m.isfile() and m.name.rsplit("/", 1)[-1] == member:
            data = tar.extractfile(m).read()
            try:
                return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
            except Exception as exc:
                raise XaipipeError(f"{member} in the CIFAR-10 archive is not a readable batch ({exc})") from exc
    raise XaipipeError(f"the CIFAR-10 archive has no member {member!r}; is it cifar-10-python.tar.gz?")


def _batch_arrays(batch: dict) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise XaipipeError(f"CIFAR batch has data of shape {data.shape} and {len(labels)} labels; expected "
                           f"(N, 3072) and N")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_cifar10(archive: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train (50000, 32, 32, 3) uint8, y_train, x_test, y_test`` from the official archive."""
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise XaipipeError(f"{archive} is not a readable tar.gz archive ({exc})") from exc
    with tar:
        parts = [_batch_arrays(_load_batch(tar, b)) for b in TRAIN_BATCHES]
        x_te, y_te = _batch_arrays(_load_batch(tar, TEST_BATCH))
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    return x_tr, y_tr, x_te, y_te


def fetch_cifar10(raw_dir: str, mirror: str | None = None, offline: bool = False, verify: bool = True) -> dict:
    """Manifest of the CIFAR-10 archive (raw folder -> mirror -> official download, checksummed)."""
    return resolve(CIFAR10, raw_dir, mirror=mirror, offline=offline, verify=verify)


def prepare_cifar10(manifest: dict, out_train: str | Path, out_test: str | Path, out_manifest: str | Path) -> dict:
    """Write ``train.npz``/``test.npz`` (``x`` uint8 N x 32 x 32 x 3, ``y`` int64) and the manifest."""
    path = manifest["items"][ARCHIVE]["path"]
    x_tr, y_tr, x_te, y_te = read_cifar10(path)
    for out, x, y in ((out_train, x_tr, y_tr), (out_test, x_te, y_te)):
        with atomic_path(out) as tmp:
            np.savez(tmp, x=x, y=y)
    stats = {"n_train": int(len(y_tr)), "n_test": int(len(y_te)), "classes": list(CLASSES),
             "train_per_class": np.bincount(y_tr, minlength=10).tolist(),
             "test_per_class": np.bincount(y_te, minlength=10).tolist()}
    write_json(out_manifest, {**manifest, "stats": stats})
    log.info("CIFAR-10: %d training and %d test images from %s", len(y_tr), len(y_te), path)
    return stats


__all__ = ["ARCHIVE", "CIFAR10", "CLASSES", "fetch_cifar10", "prepare_cifar10", "read_cifar10"]
