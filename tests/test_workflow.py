"""End-to-end runs of the real Snakefile on the tiny config (in a temporary working directory)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
needs_shared = pytest.mark.skipif(
    not (SHARED / "20news-bydate").is_dir(),
    reason=f"real datasets not found at {SHARED} (the shared mirror); these end-to-end runs need it")


def smk(workdir: Path, *args: str, overlays: tuple[dict, ...] = (), check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(ROOT / "config" / "tiny.yaml")]
    for i, ov in enumerate(overlays):
        p = workdir / f"overlay{i}.yaml"
        p.write_text(yaml.safe_dump(ov))
        cmd.append(str(p))
    cmd += list(args)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def job_counts(output: str) -> dict[str, int]:
    """Parse snakemake's 'Job stats' table."""
    counts = {}
    block = output.split("Job stats:", 1)
    if len(block) < 2:
        return counts
    for line in block[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if not (SHARED / "20news-bydate").is_dir():
        pytest.skip(f"real datasets not found at {SHARED}")
    wd = tmp_path_factory.mktemp("tiny")
    mirror = {"data_mirror": str(SHARED)}
    smk(wd, overlays=(mirror,))
    return wd, mirror


@pytest.mark.slow
@needs_shared
def test_tiny_run_produces_every_artifact(tiny_run):
    wd, _ = tiny_run
    res = wd / "results"
    for d in ("ng20", "agnews", "mnist"):
        stats = json.loads((res / d / "data" / "stats.json").read_text())
        assert stats["train"]["n_docs"] > 0 and stats["test"]["n_docs"] > 0
        for m in ("teacher", "student"):
            mdir = res / d / "models" / m
            metrics = json.loads((mdir / "metrics.json").read_text())
            for key in ("accuracy", "per_class_accuracy", "confusion_matrix", "n_parameters", "train_seconds"):
                assert key in metrics, (d, m, key)
            assert 0.0 <= metrics["accuracy"] <= 1.0
            assert (mdir / "model.pt").stat().st_size > 0
            hist = pd.read_csv(mdir / "history.csv")
            assert list(hist["epoch"]) == [1, 2]
            assert (mdir / "history.png").stat().st_size > 0
            assert (wd / "benchmarks" / d / f"train_{m}.tsv").is_file()
            assert (wd / "logs" / d / f"train_{m}.log").is_file()
    for d in ("ng20", "agnews"):
        assert (res / d / "embedding" / "vectors.npy").is_file()
        assert (res / d / "data" / "length_histogram.png").is_file()
        df = pd.read_parquet(res / d / "data" / "train.parquet")
        assert {"id", "text", "tokens", "n_tokens", "label", "label_name"} <= set(df.columns)
    ag = json.loads((res / "agnews" / "models" / "teacher" / "metrics.json").read_text())
    assert ag["comparable_with_paper"] is False and "NOT comparable" in ag["note"]
    table = pd.read_csv(res / "summary" / "models.csv")
    assert len(table) == 6 and "published_accuracy" in table.columns
    # no temporary files left behind by the atomic writers
    assert not [p for p in res.rglob("*.tmp*")]


@pytest.mark.slow
@needs_shared
def test_rerun_does_nothing_and_param_change_reruns_only_dependents(tiny_run):
    wd, mirror = tiny_run
    out = smk(wd, "-n", overlays=(mirror,))
    assert "Nothing to be done" in out.stdout + out.stderr
    change = {"ng20": {"models": {"student": {"lr": 0.01}}}}
    out = smk(wd, "-n", overlays=(mirror, change))
    counts = job_counts(out.stdout + out.stderr)
    assert counts == {"train_text_model": 1, "models_summary": 1, "all": 1}, counts
    change = {"ng20": {"embedding": {"window": 3}}}
    counts = job_counts(smk(wd, "-n", overlays=(mirror, change)).stdout)
    assert counts == {"embedding": 1, "train_text_model": 2, "models_summary": 1, "all": 1}, counts


@pytest.mark.slow
def test_offline_without_data_fails_fast_with_instructions(tmp_path):
    ov = {"data_mirror": None, "offline": True, "datasets": ["mnist"]}
    res = smk(tmp_path, "--until", "fetch_data", overlays=(ov,), check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs" / "mnist" / "fetch_data.log").read_text()
    assert "train-images-idx3-ubyte.gz" in log
    assert "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in log
    assert str(Path("data/raw/mnist")) in log and "data_mirror" in log
    assert not (tmp_path / "results" / "mnist" / "data" / "manifest.json").exists()
