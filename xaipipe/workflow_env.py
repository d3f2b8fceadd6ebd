"""The environment the workflow gives its jobs (set by rules/common.smk while the Snakefile is read)."""

from __future__ import annotations

import os
from typing import MutableMapping


def prepend_pythonpath(path: str, environ: MutableMapping[str, str] | None = None) -> str:
    """Put ``path`` first on ``PYTHONPATH`` in ``environ`` (default ``os.environ``), after it the entries
    already there (empty ones dropped); returns the new value.

    The workflow passes the checkout's root, so that its jobs import this checkout's library. Every process
    that reads the Snakefile sets it (the main one, and each job's own process, on a cluster node too), so
    the variable is the workflow's own, not a requirement on the user: an ``envvars:`` directive would make
    a plain ``snakemake --cores all`` fail wherever PYTHONPATH is unset."""
    env = os.environ if environ is None else environ
    env["PYTHONPATH"] = os.pathsep.join([path] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env["PYTHONPATH"]
