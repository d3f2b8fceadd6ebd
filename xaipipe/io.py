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
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import UnreadableFileError, storage_error

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
