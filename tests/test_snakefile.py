"""The workflow's own files: `snakemake --lint` finds nothing, and the environment rules/common.smk gives
the jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from xaipipe.workflow_env import prepend_pythonpath

ROOT = Path(__file__).resolve().parents[1]


def test_snakemake_lint_finds_nothing(tmp_path):
    """Rule files hold rules only (their helpers are in rules/functions/ and the library), no absolute
    paths, no hardcoded path prefixes in params, no environment variable the user must set."""
    res = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"),
                          "--directory", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    assert "Lints for" not in res.stdout + res.stderr


def test_prepend_pythonpath_puts_the_checkout_first_and_keeps_the_entries_there():
    env: dict[str, str] = {}
    assert prepend_pythonpath("/repo", env) == "/repo" == env["PYTHONPATH"]
    env = {"PYTHONPATH": os.pathsep.join(["/a", "", "/b", ""]), "HOME": "/home/u"}
    assert prepend_pythonpath("/repo", env) == os.pathsep.join(["/repo", "/a", "/b"])
    assert env == {"PYTHONPATH": os.pathsep.join(["/repo", "/a", "/b"]), "HOME": "/home/u"}


def test_prepend_pythonpath_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/a")
    prepend_pythonpath("/repo")
    assert os.environ["PYTHONPATH"] == os.pathsep.join(["/repo", "/a"])
