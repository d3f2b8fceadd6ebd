"""Atomic file writing and small serialisation helpers.

Every artifact of the pipeline is written to a temporary file in the same folder and renamed into
place (``os.replace`` is atomic on POSIX), so an interrupted run never leaves a half-written file that
a later run could take as complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import UnsafeFileError, storage_error

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name keeps the final suffix (libraries such as pandas or torch choose the format
    from it). On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    except OSError as exc:
        err = storage_error(exc, path)
        if err is None:
            raise
        raise err from exc
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        err = storage_error(exc, path)
        if err is None and isinstance(exc, (OSError, RuntimeError)):
            probe = _probe_write(path.parent)  # writers such as torch's report a full disk without an errno
            err = storage_error(probe, path) if probe is not None else None
        if err is not None and err is not exc:
            raise err from exc
        raise


def _probe_write(folder: Path, nbytes: int = 1 << 20) -> OSError | None:
    """Try to write ``nbytes`` into ``folder``: the OSError if the disk (or a size limit) refuses."""
    try:
        with tempfile.TemporaryFile(dir=folder) as fh:
            fh.write(b"\0" * nbytes)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return exc
    return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically and reproducibly.

    ``torch.save`` names the archive's root folder after the file it is given, which would be the random
    temporary name of :func:`atomic_path`; written through a file object the folder is always
    ``archive``, so saving the same object twice gives byte-identical files."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


#: what the safe unpickler says when a file needs more than tensors and plain data
_REFUSED = re.compile(r"GLOBAL|unrecognized function|Can only (?:create new object|build)|persistent_load")


def _unpickler_detail(message: str) -> str:
    """The reason in torch's multi-line "Weights only load failed ..." message, as one line."""
    lines = [ln.split("WeightsUnpickler error:")[-1].strip() for ln in message.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Check the documentation", "Weights only load failed"))]
    refused = [ln for ln in lines if _REFUSED.search(ln)]
    return (refused or lines or [message.strip()])[-1].rstrip(".")


def load_torch(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` that never unpickles arbitrary objects (``weights_only=True``): only tensors and plain
    data (dict, list, tuple, str, numbers, bool, None) come back, so a crafted file cannot run code.

    A file that refers to anything else raises :class:`~xaipipe.errors.UnsafeFileError` (one line naming
    the file and what it refers to); any other failure (a truncated or foreign file) propagates (the
    unpickler's several-paragraph message cut to its reason)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(str(exc))
        if _REFUSED.search(detail):
            name = re.search(r"GLOBAL (\S+?)\.?(?:\s|$)", detail)
            what = f"the object {name.group(1)}" if name else f"other objects ({detail})"
            raise UnsafeFileError(f"{path} was not loaded: besides tensors and plain data it refers to {what}, "
                                  f"and unpickling it could run code") from exc
        raise pickle.UnpicklingError(detail) from exc


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's are often several paragraphs)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def plain(obj: Any, where: str = "value") -> Any:
    """``obj`` as the safe loader (:func:`load_torch`) can read it back: tensors, None, bool, int, float, str
    and lists, tuples and dicts of these; numpy numbers and arrays become Python numbers and lists, paths
    strings. Anything else is a ``TypeError`` naming ``where`` (it would make a file that cannot be loaded)."""
    import torch

    if isinstance(obj, (np.generic, np.ndarray)):  # before float: np.float64 is a float subclass
        return obj.tolist()
    if obj is None or type(obj) in (bool, int, float, str) or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {plain(k, f"{where} key"): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint holds only "
                    f"tensors and plain data (None, bool, int, float, str, list, tuple, dict)")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
