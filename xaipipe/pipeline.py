"""Glue for the thin Snakemake scripts: logging to the rule's log file, threads, clean errors."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from .errors import XaipipeError, storage_error


def _param(smk: Any, name: str, default: Any) -> Any:
    """The rule's ``params.<name>``, or ``default`` when it has none."""
    params = getattr(smk, "params", None)
    try:
        value = getattr(params, name)
    except (AttributeError, KeyError, TypeError):
        return default
    return default if value is None else value


def setup(smk: Any) -> logging.Logger:
    """Log to the rule's ``log:`` file and to stderr; set torch's threads from ``threads:``; seed
    ``random``, NumPy's global generator and torch with the rule's ``params.seed`` (0 without one) and
    switch on deterministic algorithms for its ``params.device`` (:mod:`xaipipe.determinism`), so that a
    stage gives the same bytes in every run even where a library draws from a global generator."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if getattr(smk, "log", None):
        handlers.append(logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    try:
        import torch

        torch.set_num_threads(max(1, int(getattr(smk, "threads", 1) or 1)))
    except ImportError:  # pragma: no cover
        pass
    else:
        from .determinism import seed_everything

        try:
            seed = int(_param(smk, "seed", 0))
        except (TypeError, ValueError):  # a rule whose seed parameter is something else
            seed = 0
        seed_everything(seed, _param(smk, "device", None))
    return logging.getLogger(f"xaipipe.rule.{getattr(smk, 'rule', 'script')}")


def run(smk: Any, fn: Callable[[logging.Logger], Any]) -> None:
    """Run a stage; a :class:`XaipipeError` ends the job with its message (no traceback dump).

    The job dies with Snakemake (Linux: SIGTERM when its parent process exits, SIGKILL included), so no
    orphan keeps training and writing its checkpoint after the workflow is gone."""
    from .process import die_with_parent

    if type(smk).__module__.split(".")[0] == "snakemake":  # a real job, not run() called in-process by a test
        die_with_parent()
    try:
        log = setup(smk)
    except OSError as exc:  # the log file itself cannot be written
        err = storage_error(exc, smk.log[0] if getattr(smk, "log", None) else None)
        if err is None:
            raise
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)
    try:
        fn(log)
    except XaipipeError as exc:
        log.error("%s", exc)
        sys.exit(1)
    except (OSError, RuntimeError) as exc:
        err = storage_error(exc)
        if err is None:
            log.exception("unexpected error in rule %s", getattr(smk, "rule", "?"))
            raise
        log.error("%s", err)
        sys.exit(1)
    except Exception:
        log.exception("unexpected error in rule %s", getattr(smk, "rule", "?"))
        raise
