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


#: the studies beside the text core and the rule-name prefixes of their jobs
STUDIES = {"distill_mnist": ("distill_mnist_",), "distill_feedback": ("distill_feedback", "feedback_"),
           "rnn": ("rnn_",), "xnet": ("xnet_",), "xdistill": ("xdistill_",)}


def _planned_rules(tmp_path, *overlays: str) -> set[str]:
    files = []
    for i, text in enumerate(overlays):
        f = tmp_path / f"overlay{i}.yaml"
        f.write_text(text)
        files.append(str(f))
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(ROOT / "config" / "tiny.yaml"), *files],
                         capture_output=True, text=True, env={**os.environ, "XAIPIPE_OFFLINE": "1"})
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    stats = res.stdout.split("Job stats:")[1].split("total")[0]
    return {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}


def test_every_study_switches_off_the_same_way(tmp_path):
    """One switch for every study (README "Studies"): a present section runs unless `enabled: false`."""
    on = _planned_rules(tmp_path)
    for study, prefixes in STUDIES.items():
        assert any(r.startswith(prefixes) for r in on), f"{study} planned no job in config/tiny.yaml"
    off = _planned_rules(tmp_path, "".join(f"{s}: {{enabled: false}}\n" for s in STUDIES))
    assert not [r for r in off if r.startswith(sum(STUDIES.values(), ()))], off
    assert {"train_text_model", "explain", "evaluate"} <= off  # the text core still runs
    only_xnet = _planned_rules(tmp_path, "".join(f"{s}: {{enabled: false}}\n" for s in STUDIES if s != "xnet"))
    assert {r for r in only_xnet if r.startswith(sum(STUDIES.values(), ()))} == {"xnet_train", "xnet_report"}


def test_a_disabled_study_is_still_checked(tmp_path):
    ov = tmp_path / "overlay.yaml"
    ov.write_text("xnet: {enabled: false, epoch: 3}\n")
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(ROOT / "config" / "tiny.yaml"), str(ov)],
                         capture_output=True, text=True, env={**os.environ, "XAIPIPE_OFFLINE": "1"})
    assert res.returncode != 0 and "epoch" in res.stdout + res.stderr
