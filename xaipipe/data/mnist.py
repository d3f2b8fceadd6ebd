"""MNIST in the original IDX format (gzip-compressed or raw)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import XaipipeError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (magic 0x0000 <dtype> <ndim>, big-endian dims, then data)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise XaipipeError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise XaipipeError(f"{path}: IDX header promises {expected} bytes of data, file has {len(data) - offset}")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)
