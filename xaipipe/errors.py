"""Exceptions with messages meant for the person running the pipeline."""


class XaipipeError(Exception):
    """Base class: the message names the problem and the fix."""


class DataUnavailableError(XaipipeError):
    """A raw data file could not be found locally, in the mirror, or downloaded."""


class ChecksumError(XaipipeError):
    """A file's checksum does not match the expected value."""


class ConfigError(XaipipeError):
    """A configuration value is invalid (beyond what the JSON schema can express)."""


class InputTextError(XaipipeError):
    """A text given to a model is empty or has no known word."""


class UnsafeFileError(XaipipeError):
    """A file (model, checkpoint) holds objects other than tensors and plain data: loading it would mean
    unpickling them, which can run any code, so it is refused."""


class CheckpointInUseError(XaipipeError):
    """Another live process holds the lock of a training checkpoint (two trainers must not share one)."""


class NonFiniteError(XaipipeError):
    """A value that must be a finite number (input, loss, logit, relevance) is NaN or infinite."""


def check_finite(value: object, what: str, fix: str = "") -> None:
    """Raise :class:`NonFiniteError` ``"<what> is not finite (n NaN, m infinite of N values). <fix>"`` when
    ``value`` (a number, a numpy array, a torch tensor or a list of numbers) holds NaN or +-inf.

    Integer and boolean values are always finite. A tensor on a GPU is checked there and costs one
    synchronisation, so call this once per epoch or per output, not per step."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "is_floating_point"):  # a torch tensor
        import torch

        t = value.detach()
        if not (t.is_floating_point() or t.is_complex()) or bool(torch.isfinite(t).all()):
            return
        n_nan, n_inf, total = int(torch.isnan(t).sum()), int(torch.isinf(t).sum()), t.numel()
    else:
        a = np.asarray(value)
        if a.dtype.kind not in "fc":
            if a.dtype.kind != "O":
                return
            a = a.astype(np.float64)
        if np.isfinite(a).all():
            return
        n_nan, n_inf, total = int(np.isnan(a).sum()), int(np.isinf(a).sum()), a.size
    msg = f"{what} is not finite ({n_nan} NaN, {n_inf} infinite of {total} values)"
    raise NonFiniteError(f"{msg}. {fix}" if fix else msg)


class UnreadableFileError(XaipipeError):
    """An input file of a stage exists but is damaged or truncated (does not parse in its format)."""


class ModelAtChanceError(XaipipeError):
    """A trained model is not better than predicting the most frequent class: nothing to explain."""


class StorageError(XaipipeError):
    """An output could not be written: disk full, quota or file-size limit, no permission, read-only."""


#: errno values that mean "this output cannot be written here" (not a bug in the pipeline)
STORAGE_ERRNOS = {"ENOSPC", "EDQUOT", "EFBIG", "EACCES", "EPERM", "EROFS"}
#: ... and, when the failing operation is known to be a write, also "something is in the way"
WRITE_ERRNOS = STORAGE_ERRNOS | {"ENOTDIR", "EISDIR", "EEXIST"}


def storage_error(exc: BaseException, path: object = None) -> "StorageError | None":
    """A :class:`StorageError` naming ``path`` and the fix when ``exc`` is a write failure, else None.

    torch's zip writer reports a full disk as ``RuntimeError: ... failed writing file`` and numpy as
    ``OSError: N requested and M written`` (no errno): both count as a full disk."""
    import errno as errno_mod

    if isinstance(exc, StorageError):
        return exc
    errnos = WRITE_ERRNOS if path is not None else STORAGE_ERRNOS
    if isinstance(exc, OSError) and exc.errno is not None and errno_mod.errorcode.get(exc.errno) in errnos:
        code, reason = errno_mod.errorcode[exc.errno], exc.strerror
    elif (isinstance(exc, RuntimeError) and "failed writing" in str(exc).lower()) or (
            isinstance(exc, OSError) and exc.errno is None and " requested and " in str(exc)):
        # torch's zip writer and numpy's tofile report a short write without an errno
        code, reason = "ENOSPC", f"short write ({str(exc).splitlines()[0]})"
    else:
        return None
    what = f"cannot write {path}" if path is not None else f"cannot access {getattr(exc, 'filename', None) or 'a file'}"
    if code in ("ENOSPC", "EDQUOT", "EFBIG"):
        fix = ("The disk is full or a quota/file-size limit was hit: free space (or point results/ at a larger "
               "disk with a symlink) and rerun")
    elif code in ("ENOTDIR", "EISDIR", "EEXIST"):
        fix = ("A file or folder is in the way of this output: move it aside (results/, logs/ and benchmarks/ "
               "must be folders) and rerun")
    else:
        fix = ("The location is not writable: fix the permissions of results/, logs/ and benchmarks/ "
               "(or run from a writable copy of the working directory) and rerun")
    return StorageError(f"{what}: {reason}. {fix}; finished outputs are kept and no partial "
                        f"file was left behind (outputs are written to a temporary file and renamed)")
