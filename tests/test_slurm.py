"""A real single-node Slurm: the tiny planted chain through ``--profile profiles/slurm`` equals a local run.

``tests/slurm/cluster.sh`` starts munged, MariaDB, slurmdbd, slurmctld and slurmd (Debian's packages) as
background processes in a private run folder and stops exactly those at the end. Slurm's accounting
(``sacct``) is the independent record that every job went through ``sbatch`` with the resources its rule
declared: GPU-tagged rules (training, explanations) hold the cluster's placeholder GPU, the other rules none.

Three Snakemake runs go at once (two CPUs: the Slurm run mostly waits on its jobs):

* the planted corpus' data -> embedding -> teacher -> document selection -> RDE chain through Slurm,
* the same targets with the same config through ``--profile profiles/local`` (the reference),
* a one-rule workflow whose job fails on its first attempt: the profile's ``retries`` resubmit it, and the
  failed attempt's Slurm log stays where the plugin's error message points.

Needs root and the packages: under CI (``CI`` set) or with ``XAIPIPE_SLURM_INSTALL=1`` the fixture installs
them (``cluster.sh install``); it skips, with the reason, where that cannot be done. Deselect with
``-m "not slurm"``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
GPU_MODEL = "ci"  # the placeholder GPU's type in tests/slurm/cluster.sh
TARGETS = ["results/planted/models/teacher/metrics.json",
           "results/planted/explain/teacher/rde_l2_fixed/relevance.parquet"]
GPU_RULES = {"train_text_model", "explain"}
CPU_RULES = {"fetch_data", "prepare_text", "embedding", "select_documents"}
RUN_TIMEOUT = 1200  # seconds per Snakemake run; a status command that cannot see the jobs hangs for ever

FLAKY_SNAKEFILE = """\
# Fails on its first attempt (a transient failure), succeeds when resubmitted with more memory.
rule flaky:
    output:
        "flaky.txt",
    resources:
        mem_mb=lambda wc, attempt: 100 * attempt,
        runtime=5,
    shell:
        "if [ {resources.mem_mb} -lt 200 ]; then echo 'transient failure, attempt with {resources.mem_mb} MB' >&2;"
        " exit 1; fi; echo ok > {output}"
"""


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:]


def _cluster(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout)


def _processes_naming(run_dir: str) -> list[str]:
    """Live processes whose command line or environment names the run folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if any(run_dir.encode() in (proc / f).read_bytes() for f in ("cmdline", "environ")):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name}: {cmdline}")
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def cluster():
    """A started test cluster: ``{"run": folder, "env": environment for Slurm clients}``; stopped at the end."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("the Slurm test cluster needs root (its daemons run as root)")
    check = _cluster("check")
    if check.returncode != 0:
        if not (os.environ.get("CI") or os.environ.get("XAIPIPE_SLURM_INSTALL") == "1"):
            pytest.skip(f"{check.stderr.strip()}; or set XAIPIPE_SLURM_INSTALL=1 to let this test install them")
        install = _cluster("install", timeout=1300)
        if install.returncode != 0:
            why = (install.stderr.strip().splitlines() or ["cluster.sh install failed"])[-1]
            pytest.skip(f"cannot install Slurm here: {why}\n{_tail(install.stdout + install.stderr, 1500)}")
    start = _cluster("start")
    if start.returncode == 3:
        pytest.skip(start.stderr.strip())
    assert start.returncode == 0, f"the test cluster did not start:\n{_tail(start.stderr, 6000)}"
    run_dir = start.stdout.strip().splitlines()[-1]
    settings = dict(line.split("=", 1) for line in Path(run_dir, "env").read_text().split())
    env = dict(os.environ, SLURM_CONF=settings["SLURM_CONF"],
               PATH=os.pathsep.join([settings["PATH_PREFIX"], str(Path(sys.executable).parent),
                                     os.environ.get("PATH", "")]))
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_")) and v != "SLURM_CONF"]:
        del env[var]
    try:
        yield {"run": run_dir, "env": env}
    finally:
        stop = _cluster("stop", run_dir, timeout=180)
        left = _processes_naming(run_dir)
        if stop.returncode == 0 and not left:
            shutil.rmtree(run_dir, ignore_errors=True)
        assert stop.returncode == 0, f"stopping the test cluster failed:\n{stop.stderr}"
        assert not left, "processes of the test cluster outlived it:\n" + "\n".join(left)


def _snakemake(workdir: Path, *args: str, env: dict) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "snakemake.out", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "snakemake", "--directory", str(workdir), *args],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, workdir: Path, deadline: float) -> dict:
    try:
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.terminate()  # snakemake cancels its Slurm jobs (scancel) on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        rc = None
    return {"dir": workdir, "rc": rc, "out": (workdir / "snakemake.out").read_text()}


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The three concurrent runs (Slurm chain, local chain, flaky rule through Slurm) and their outputs."""
    base = tmp_path_factory.mktemp("slurm")
    overlay = base / "overlay.yaml"
    # the same config for both runs: config/tiny.yaml (the targets pick the planted chain), and gpu > 0 so
    # that the GPU-tagged rules ask Slurm for the placeholder GPU
    overlay.write_text(yaml.safe_dump({"resources": {"gpu": 1, "gpu_model": GPU_MODEL}}))
    common = ["-s", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config" / "tiny.yaml"), str(overlay)]
    # The plugin's status checks come N, N + 10, N + 20, ... s apart while no job ends (N: 10 in the
    # profile). A tiny job (two Snakefile parses and seconds of work: ~20 s on an idle machine) is seen
    # after 8 + 18 = 26 s with N = 8 (after 10 + 20 = 30 s with 10, after 2 + 12 + 22 = 36 s with 2).
    fast = ["--slurm-init-seconds-before-status-checks", "8"]
    (base / "flaky").mkdir()
    (base / "flaky" / "Snakefile").write_text(FLAKY_SNAKEFILE)
    env_local = {k: v for k, v in cluster["env"].items() if k != "SLURM_CONF"}
    procs = {
        "local": (_snakemake(base / "local", *common, "--profile", str(ROOT / "profiles" / "local"), "--",
                             *TARGETS, env=env_local), base / "local"),
        "slurm": (_snakemake(base / "slurm", *common, "--profile", str(ROOT / "profiles" / "slurm"), *fast,
                             "--", *TARGETS, env=cluster["env"]), base / "slurm"),
        "flaky": (_snakemake(base / "flaky", "-s", str(base / "flaky" / "Snakefile"), "--profile",
                             str(ROOT / "profiles" / "slurm"), *fast, env=cluster["env"]), base / "flaky"),
    }
    deadline = time.monotonic() + RUN_TIMEOUT
    return {name: _finish(proc, wd, deadline) for name, (proc, wd) in procs.items()}


def _ok(run: dict) -> dict:
    assert run["rc"] == 0, f"snakemake in {run['dir']} ended with {run['rc']}:\n{_tail(run['out'], 6000)}"
    return run


def submitted_jobs(output: str) -> dict[str, dict]:
    """Parse Snakemake's log: Slurm job id -> {rule, resources, threads} of every submitted job."""
    jobs, blocks = {}, {}
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", output):
        m_rule = re.search(r"^rule (\w+):$", block, re.M)
        m_id = re.search(r"^\s+jobid: (\d+)$", block, re.M)
        if m_rule and m_id:
            res = re.search(r"^\s+resources: (.*)$", block, re.M)
            threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
            blocks[m_id.group(1)] = {
                "rule": m_rule.group(1),
                "resources": dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {},
                "threads": int(threads.group(1)) if threads else 1,
            }
    for sm_id, slurm_id in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output):
        jobs[slurm_id] = blocks[sm_id]
    return jobs


def sacct(env: dict) -> dict[str, dict]:
    """Slurm's accounting record of every job of the cluster: job id -> fields."""
    fields = ["JobID", "JobName", "Comment", "State", "ExitCode", "ReqTRES", "AllocTRES"]
    res = subprocess.run(["sacct", "-a", "-X", "--parsable2", "--noheader", "-S", "2000-01-01",
                          "-o", ",".join(fields)], env=env, capture_output=True, text=True, check=True)
    rows = [dict(zip(fields, line.split("|"))) for line in res.stdout.splitlines() if line.strip()]
    for row in rows:
        row["tres"] = dict(kv.split("=", 1) for kv in row["AllocTRES"].split(",") if kv)
    return {row["JobID"]: row for row in rows}


def tres_mb(value: str) -> float:
    """A TRES memory amount (``8000M``, ``2G``) in MB."""
    return float(value[:-1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}[value[-1]]


def run_id(output: str) -> str:
    return re.search(r"SLURM run ID: (\S+)", output).group(1)


@pytest.mark.slurm
@pytest.mark.slow
def test_every_job_went_through_sbatch_with_its_rule_resources(runs, cluster):
    slurm = _ok(runs["slurm"])
    submitted = submitted_jobs(slurm["out"])
    assert sorted(j["rule"] for j in submitted.values()) == sorted(GPU_RULES | CPU_RULES), submitted
    records = sacct(cluster["env"])
    for job_id, job in submitted.items():
        rec = records.get(job_id)
        assert rec is not None, f"Slurm has no record of job {job_id} ({job['rule']}): {records}"
        assert rec["JobName"] == run_id(slurm["out"]) and rec["State"] == "COMPLETED", rec
        assert rec["Comment"].startswith(f"rule_{job['rule']}_wildcards_planted"), rec
        assert tres_mb(rec["tres"]["mem"]) == int(job["resources"]["mem_mb"]), (job, rec)
        assert rec["tres"]["cpu"] == str(job["threads"]), (job, rec)
        if job["rule"] in GPU_RULES:
            assert job["resources"]["gpu"] == "1" and job["resources"]["gpu_model"] == GPU_MODEL, job
            assert rec["tres"]["gres/gpu"] == "1" and rec["tres"][f"gres/gpu:{GPU_MODEL}"] == "1", rec
        else:
            assert "gpu" not in job["resources"], job
            assert not [k for k in rec["tres"] if k.startswith("gres/gpu")], rec
    # the Slurm logs of successful jobs are removed (only failed jobs' logs are kept)
    assert not list((slurm["dir"] / ".snakemake" / "slurm_logs").rglob("*.log"))


# --- results: equal to the local run's, wall-time fields excluded -----------------------------------

def _timing(name: str) -> bool:
    """Wall-time fields (metrics.json train_seconds, relevance/history 'seconds', params.json seconds_*)."""
    return "seconds" in name


def assert_same(a, b, where: str) -> None:
    """Exact equality of nested dicts / lists / arrays / tensors / numbers, wall-time keys left out."""
    import torch

    if isinstance(a, dict):
        assert isinstance(b, dict), where
        ka, kb = ({k for k in d if not _timing(str(k))} for d in (a, b))
        assert ka == kb, f"{where}: keys {sorted(ka ^ kb)}"
        for k in ka:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _table(path: Path) -> dict:
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return {c: [v.tolist() if isinstance(v, np.ndarray) else v for v in df[c]] for c in df.columns}


def assert_same_content(a: Path, b: Path) -> None:
    if a.suffix == ".json":
        assert_same(json.loads(a.read_text()), json.loads(b.read_text()), str(a))
    elif a.suffix in (".parquet", ".csv"):
        assert_same(_table(a), _table(b), str(a))
    elif a.suffix == ".npy":
        np.testing.assert_array_equal(np.load(a), np.load(b), err_msg=str(a))
    elif a.suffix == ".pt":  # the zip container carries a random serialization id: compare the contents
        import torch

        assert_same(torch.load(a, weights_only=False), torch.load(b, weights_only=False), str(a))
    elif a.suffix == ".png":  # rendered from the compared tables
        assert b.stat().st_size > 0
    else:
        assert a.read_bytes() == b.read_bytes(), f"{a} differs from {b}"


@pytest.mark.slurm
@pytest.mark.slow
def test_results_equal_a_local_run(runs):
    slurm, local = _ok(runs["slurm"]), _ok(runs["local"])
    res_s, res_l = slurm["dir"] / "results", local["dir"] / "results"
    files = sorted(p.relative_to(res_l) for p in res_l.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(res_s) for p in res_s.rglob("*") if p.is_file())
    for target in TARGETS:
        assert Path(target).relative_to("results") in files
    for rel in files:
        assert_same_content(res_s / rel, res_l / rel)
    # the comparison can fail: the relevance values are real numbers from the explained model
    rel = pd.read_parquet(res_s / "planted/explain/teacher/rde_l2_fixed/relevance.parquet")
    assert len(rel) >= 2 and all(len(r) == len(t) for r, t in zip(rel["relevance"], rel["tokens"]))
    assert any(np.abs(np.asarray(r, dtype=float)).sum() > 0 for r in rel["relevance"])


@pytest.mark.slurm
@pytest.mark.slow
def test_failed_job_is_retried_and_its_slurm_log_kept(runs, cluster):
    flaky = _ok(runs["flaky"])
    assert (flaky["dir"] / "flaky.txt").read_text().strip() == "ok"
    records = [r for r in sacct(cluster["env"]).values() if r["JobName"] == run_id(flaky["out"])]
    records.sort(key=lambda r: int(r["JobID"]))
    assert [(r["Comment"], r["State"], tres_mb(r["tres"]["mem"])) for r in records] == [
        ("rule_flaky", "FAILED", 100), ("rule_flaky", "COMPLETED", 200)], records
    failed, succeeded = records[0]["JobID"], records[1]["JobID"]
    logdir = flaky["dir"] / ".snakemake" / "slurm_logs" / "rule_flaky"
    # Snakemake's error message names the failed job's Slurm log; the log holds the job's stderr
    assert str(logdir / f"{failed}.log") in flaky["out"]
    assert "transient failure, attempt with 100 MB" in (logdir / f"{failed}.log").read_text()
    assert not (logdir / f"{succeeded}.log").exists()
    assert "Trying to restart job" in flaky["out"]


def test_profiles_are_valid_snakemake_profiles():
    """Every key of both profiles is an option of the installed Snakemake and Slurm plugin (no typos)."""
    from snakemake.cli import get_argument_parser

    options = {a.lstrip("-") for action in get_argument_parser()._actions for a in action.option_strings}
    for profile in ("slurm", "local"):
        cfg = yaml.safe_load((ROOT / "profiles" / profile / "config.yaml").read_text())
        unknown = [k for k in cfg if k not in options]
        assert not unknown, f"profiles/{profile}: unknown option(s) {unknown}"
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["retries"] >= 1
    assert {"mem_mb", "runtime"} <= set(slurm["default-resources"])
