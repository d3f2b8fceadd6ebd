"""The workflow's own files: the environment rules/common.smk gives the jobs."""

from __future__ import annotations

import os

from xaipipe.workflow_env import prepend_pythonpath


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
