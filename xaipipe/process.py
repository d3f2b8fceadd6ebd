"""Processes: one writer per checkpoint, and jobs that do not outlive the workflow that started them.

* :func:`hold_lock`: an exclusive ``flock`` on a lock file (``resume.pt.lock`` beside a resume checkpoint)
  for as long as a trainer uses the checkpoint. The lock belongs to the process: the kernel releases it when
  the process ends in any way (SIGKILL included), so a lock is never stale; the file only names its holder
  (pid, host, start time) for the message a second trainer gets.
* :func:`die_with_parent`: on Linux, the kernel sends the job SIGTERM when its parent (Snakemake, which
  runs every ``script:`` job as a child process) dies, even by SIGKILL; elsewhere a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Iterator

from .errors import CheckpointInUseError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock (Snakemake's own lock still applies)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

#: locks this process holds: path -> [file descriptor, depth] (re-entrant: _run holds it around fit)
_HELD: dict[str, list[int]] = {}


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux ``prctl(PR_SET_PDEATHSIG)``).

    Returns True when set, False where the platform has no such call (then nothing changes). If the parent
    is already gone when this is called, ``sig`` is sent at once."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the call: nobody would send the signal
        os.kill(os.getpid(), sig)
    return True


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


@contextlib.contextmanager
def hold_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created, with its folder, if missing) for the block.

    If another process holds it, raise :class:`CheckpointInUseError` at once (never wait) naming ``what``,
    the holder's pid, host and start time, and the fix. Re-entrant within one process. The file is removed
    when the outermost block ends; after a kill it stays behind, unlocked, and is reused."""
    path = Path(path)
    key = os.path.abspath(path)
    if fcntl is None:
        yield
        return
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    locked = True
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            pid = holder.split()[1] if holder.startswith("pid ") and holder.split()[1].isdigit() else "<pid>"
            host = holder.split(" on host ")[-1].split()[0] if " on host " in holder else None
            where = "" if host in (None, socket.gethostname()) else f" on {host}"
            raise CheckpointInUseError(
                f"{what} is in use by another training process ({holder}); two trainers must not share one "
                f"checkpoint. Wait for it to finish, or stop it (kill {pid}{where}) and rerun") from None
        except OSError as exc:  # a file system without locks (some network mounts): go on unlocked
            os.close(fd)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            log.warning("cannot lock %s (%s): %s is not protected against a second trainer", path,
                        exc.strerror, what)
            locked = False
            break
        try:  # the file may have been removed (and made anew) by its last holder between open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    if not locked:
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {started}\n".encode(), 0)
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still locked: a process that opened the old file sees it is gone and retries
        os.close(fd)


def hold_checkpoint(resume: str | os.PathLike) -> contextlib.AbstractContextManager[None]:
    """:func:`hold_lock` on ``<resume>.lock``: this process alone reads and writes the checkpoint ``resume``."""
    resume = Path(resume)
    return hold_lock(resume.with_name(resume.name + ".lock"), str(resume))


__all__ = ["die_with_parent", "hold_checkpoint", "hold_lock"]
