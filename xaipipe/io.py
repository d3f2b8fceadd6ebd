"""Atomic file writing, small serialisation helpers, and one reader per format for the stages' inputs.

Every artifact of the pipeline is written to a temporary file in the same folder and renamed into
place (``os.replace`` is atomic on POSIX), so an interrupted run never leaves a half-written file that
a later run could take as complete.

A file damaged afterwards (truncated by a full disk elsewhere, a bad copy, an edit) is a different
matter: :func:`check_file` tells a structurally broken parquet / npy / npz / json / checkpoint file from a
good one without reading it all (the Snakefile runs it on the inputs of the jobs about to run, before
Snakemake deletes any output), and the readers :func:`read_parquet`, :func:`load_npy`, :func:`load_npz`
and :func:`read_json` turn a file that does not parse into one :class:`~xaipipe.errors.UnreadableFileError`
line naming the file, the rule that writes it and how to rebuild it.
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

from .errors import UnreadableFileError, UnsafeFileError, storage_error

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


def read_json(path: str | os.PathLike, rule: str | None = None) -> Any:
    """Parsed JSON; a file that does not parse raises :class:`UnreadableFileError` naming ``rule``."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as exc:  # not JSON, or not UTF-8 text
        raise unreadable(path, exc, rule) from None


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


# --- reading the stages' inputs --------------------------------------------------------------------------
def unreadable(path: str | os.PathLike, reason: object, rule: str | None = None) -> UnreadableFileError:
    """The one-line error for a damaged input ``path`` (``reason``: what the reader said)."""
    why = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    if len(why) > 160:
        why = why[:157] + "..."
    made = f"; it is an output of rule {rule}" if rule else ""
    return UnreadableFileError(
        f"{path} is damaged or truncated ({why}){made}. Rebuild it by adding `--forcerun {path}` at the end of "
        f"the snakemake command (then what depends on it reruns), or restore the file")


def read_parquet(path: str | os.PathLike, rule: str | None = None, **kwargs: Any):
    """``pandas.read_parquet(path, **kwargs)``; a damaged file raises :class:`UnreadableFileError`."""
    import pandas as pd

    try:
        return pd.read_parquet(path, **kwargs)
    except (FileNotFoundError, PermissionError, MemoryError):
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ValueError, ... for a damaged file
        raise unreadable(path, exc, rule) from None


def load_npy(path: str | os.PathLike, rule: str | None = None) -> np.ndarray:
    """``numpy.load`` of a ``.npy`` array (no pickles); a damaged file raises :class:`UnreadableFileError`."""
    problem = check_file(path)
    if problem is not None:
        raise unreadable(path, problem, rule)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise unreadable(path, exc, rule) from None


def load_npz(path: str | os.PathLike, rule: str | None = None, keys: list[str] | None = None
             ) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (default: all) of a ``.npz`` file, read at once; a damaged file raises
    :class:`UnreadableFileError`."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in (z.files if keys is None else keys)}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise unreadable(path, exc, rule) from None


def check_file(path: str | os.PathLike) -> str | None:
    """What is structurally wrong with an existing pipeline file, or None (also for formats it does not know,
    folders and missing files). Cheap: parquet and checkpoints/npz by their footers, npy by header and size,
    json by parsing (the pipeline's json files are small)."""
    import zipfile

    p = Path(path)
    if not p.is_file():
        return None
    suffix = p.suffix.lower()
    try:
        size = p.stat().st_size
        if suffix == ".parquet":
            if size < 12:
                return f"{size} bytes, too short for a parquet file"
            with open(p, "rb") as fh:
                head = fh.read(4)
                fh.seek(size - 8)
                footer_len = int.from_bytes(fh.read(4), "little")
                tail = fh.read(4)
            if head != b"PAR1" or tail != b"PAR1":
                return "no parquet magic bytes at the start and end: truncated or not a parquet file"
            if footer_len > size - 12:
                return f"its footer claims {footer_len} bytes of a {size}-byte file"
            return None
        if suffix == ".npy":
            with open(p, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                fmt = np.lib.format
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _fortran, dtype = read(fh)
                offset = fh.tell()
            if dtype.hasobject:
                return None
            want = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if size != want:
                return f"{size} bytes, but its header describes an array of {want} bytes ({dtype} {tuple(shape)})"
            return None
        if suffix in (".npz", ".pt"):
            with zipfile.ZipFile(p) as z:
                for info in z.infolist():
                    if info.header_offset + info.compress_size > size:
                        return f"member {info.filename} runs past the end of the file"
            return None
        if suffix == ".json":
            json.loads(p.read_text())
            return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        text = str(exc).strip().splitlines()
        return text[0] if text else type(exc).__name__
    return None
