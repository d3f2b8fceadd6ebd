"""Faults at the workflow level (issue 'reliability'): a run killed mid-training resumes to the outputs of
an uninterrupted run; a corrupt mirrored file stops the run without touching anything downstream; a full
disk or a file in the way of results/ gives one clear error and keeps finished outputs."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_checkpoint_safety import alive, wait_for
from test_workflow import SHARED, needs_shared, smk, smk_command, write_synthetic_mirror

pytestmark = pytest.mark.slow

TEACHER = "results/ng20/models/teacher"


def _fsize_limit(nbytes: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("killed", ["group", pytest.param("snakemake", marks=pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux only"))])
def test_killed_training_resumes_and_equals_an_uninterrupted_run(tmp_path, killed):
    """``group``: Snakemake and its job are killed together (Ctrl-C, a node crash); ``snakemake``: only
    Snakemake is SIGKILLed, and its training job must end with it instead of training on as an orphan that
    keeps writing the checkpoint the rerun resumes from."""
    mirror = write_synthetic_mirror(tmp_path / "mirror")
    ov = {"data_mirror": str(mirror), "offline": True, "verify_checksums": False, "datasets": ["ng20"],
          "ng20": {"models": {"teacher": {"epochs": 60, "min_steps": 0, "channels": 64}}}}
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    smk(a, overlays=(ov,), targets=("results/ng20/embedding/vectors.npy",))
    shutil.copytree(a, b, symlinks=True)  # the same upstream for the uninterrupted run
    vectors_mtime = (a / "results/ng20/embedding/vectors.npy").stat().st_mtime_ns

    # SIGKILL the whole process group (snakemake and its job), or Snakemake alone, right after the first
    # epoch's checkpoint
    cmd = smk_command(a, overlays=(ov,), targets=(f"{TEACHER}/metrics.json",))
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = a / TEACHER / "resume.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    trainer = int((a / TEACHER / "resume.pt.lock").read_text().split()[1])  # the job holding the checkpoint
    try:
        if killed == "group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_for(lambda: not alive(trainer), 10), "the training job outlived Snakemake"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (a / TEACHER / "metrics.json").exists(), "training finished before the kill; raise its epochs"
    # no output of the killed job exists, not even a half-written one; only the resume checkpoint and its
    # lock file (the kill released the lock itself)
    assert sorted(p.name for p in (a / TEACHER).iterdir()) == ["resume.pt", "resume.pt.lock"]
    epoch = torch.load(ckpt, weights_only=True)["epoch"]  # tensors and plain data only
    assert 1 <= epoch < 60

    smk(a, "--unlock", overlays=(ov,))  # the kill left Snakemake's lock behind
    smk(a, overlays=(ov,), targets=(f"{TEACHER}/metrics.json",))
    log = (a / "logs/ng20/train_teacher.log").read_text()
    assert f"resuming from {TEACHER}/resume.pt after epoch {epoch} of 60" in log
    assert not ckpt.exists() and not (a / TEACHER / "resume.pt.lock").exists()
    assert not list((a / "results").rglob("*.tmp*"))
    assert (a / "results/ng20/embedding/vectors.npy").stat().st_mtime_ns == vectors_mtime  # nothing upstream reran

    smk(b, overlays=(ov,), targets=(f"{TEACHER}/metrics.json",))
    for name in ("metrics.json", "history.csv"):
        assert (a / TEACHER / name).read_bytes() == (b / TEACHER / name).read_bytes(), name
    sa = torch.load(a / TEACHER / "model.pt", weights_only=False)["state_dict"]
    sb = torch.load(b / TEACHER / "model.pt", weights_only=False)["state_dict"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert len(json.loads((a / TEACHER / "timing.json").read_text())["epoch_seconds"]) == 60


@needs_shared
def test_corrupt_mirrored_file_stops_the_run_and_touches_nothing_downstream(tmp_path):
    mirror = tmp_path / "mirror" / "mnist"
    mirror.mkdir(parents=True)
    for f in (SHARED / "mnist").glob("*-ubyte.gz"):
        shutil.copy(f, mirror / f.name)
    ov = {"data_mirror": str(mirror.parent), "datasets": ["mnist"]}
    target = ("results/mnist/models/student/metrics.json",)
    smk(tmp_path, overlays=(ov,), targets=target)
    before = _snapshot(tmp_path / "results" / "mnist")

    bad = mirror / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    res = smk(tmp_path, "--forcerun", "fetch_data", overlays=(ov,), targets=target, check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs/mnist/fetch_data.log").read_text()
    assert "checksum mismatch" in log and "t10k-labels-idx1-ubyte.gz" in log and "Traceback" not in log
    after = _snapshot(tmp_path / "results" / "mnist")
    downstream = {k: v for k, v in before.items() if not k.endswith("manifest.json")}
    assert {k: after[k] for k in downstream} == downstream  # not rewritten, not even touched


def test_a_file_in_the_way_of_results_is_named_before_any_job(tmp_path):
    (tmp_path / "results").write_text("notes")
    res = smk(tmp_path, overlays=({"datasets": ["mnist"]},), targets=("results/mnist/data/stats.json",),
              check=False)
    assert res.returncode != 0
    assert "'results' in the working directory" in res.stderr and "is not a folder" in res.stderr
    assert "Traceback" not in res.stderr and (tmp_path / "results").read_text() == "notes"
    assert not (tmp_path / "logs").exists()


def test_full_disk_is_reported_before_any_job(tmp_path):
    res = smk(tmp_path, overlays=({"datasets": ["mnist"]},), targets=("results/mnist/data/stats.json",),
              check=False, preexec_fn=_fsize_limit(32 << 10))
    assert res.returncode != 0
    assert "cannot write results/: File too large" in res.stderr and "disk is full" in res.stderr
    assert not any((tmp_path / "logs").rglob("*.log")), "a job ran although the disk was full"


@needs_shared
def test_full_disk_mid_run_fails_the_job_clearly_and_keeps_finished_outputs(tmp_path):
    ov = {"data_mirror": str(SHARED), "datasets": ["mnist"]}
    smk(tmp_path, overlays=(ov,), targets=("results/mnist/data/manifest.json",))
    manifest = (tmp_path / "results/mnist/data/manifest.json").read_bytes()
    # train.npz (~330 kB) exceeds the limit; the start-up probe (64 kB) and test.npz (~80 kB) do not
    res = smk(tmp_path, overlays=(ov,), targets=("results/mnist/data/stats.json",), check=False,
              preexec_fn=_fsize_limit(200 << 10))
    assert res.returncode != 0
    log = (tmp_path / "logs/mnist/prepare_images.log").read_text()
    assert "cannot write results/mnist/data/train.npz: File too large" in log and "Traceback" not in log
    assert (tmp_path / "results/mnist/data/manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in (tmp_path / "results/mnist/data").iterdir()) == ["manifest.json"]
    smk(tmp_path, overlays=(ov,), targets=("results/mnist/data/stats.json",))  # space again: it completes
    assert (tmp_path / "results/mnist/data/train.npz").is_file()


def test_a_nan_embedding_stops_training_naming_the_file(tmp_path):
    """A valid vectors.npy full of NaN used to train to NaN loss, exit 0 and ``"test_loss": NaN``; now the
    training job fails with one line naming the embedding file, and writes nothing."""
    import numpy as np

    mirror = write_synthetic_mirror(tmp_path / "mirror")
    ov = {"data_mirror": str(mirror), "offline": True, "verify_checksums": False, "datasets": ["ng20"],
          "ng20": {"models": {"teacher": {"epochs": 2, "channels": 8}}}}
    smk(tmp_path, overlays=(ov,), targets=("results/ng20/embedding/vectors.npy",))
    vectors = tmp_path / "results/ng20/embedding/vectors.npy"
    np.save(vectors, np.full_like(np.load(vectors), np.nan))
    res = smk(tmp_path, overlays=(ov,), targets=(f"{TEACHER}/metrics.json",), check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs/ng20/train_teacher.log").read_text()
    assert "the embedding results/ng20/embedding/vectors.npy is not finite" in log, log
    assert "Traceback" not in log
    assert not (tmp_path / TEACHER).exists() or not any((tmp_path / TEACHER).iterdir())


def test_a_truncated_input_stops_the_run_and_keeps_the_outputs_built_from_it(tmp_path):
    """A truncated train.parquet (newer than the embedding, so the embedding job is due) used to make the
    next run delete the good embedding/ outputs (Snakemake clears a job's outputs when it starts) and fail
    with a pyarrow traceback. Now the run stops before any job, naming the file and the rule that writes
    it; nothing is deleted, and the advised --forcerun rebuilds the file and what depends on it."""
    ov = {"datasets": ["planted"]}
    target = ("results/planted/embedding/info.json",)
    smk(tmp_path, overlays=(ov,), targets=target)
    emb = tmp_path / "results/planted/embedding"
    before = _snapshot(emb)
    train = tmp_path / "results/planted/data/train.parquet"
    good = train.read_bytes()
    train.write_bytes(good[: len(good) // 2])

    res = smk(tmp_path, overlays=(ov,), targets=target, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert ("stopped before any job (nothing was run or deleted): results/planted/data/train.parquet is damaged "
            "or truncated") in out and "it is an output of rule prepare_text" in out, out[-3000:]
    assert "--forcerun results/planted/data/train.parquet" in out
    assert "Traceback" not in out and "pyarrow" not in out
    assert _snapshot(emb) == before  # the embedding outputs were not deleted, not even touched
    assert not (tmp_path / "logs/planted/embedding.log").exists() or "ERROR" not in (
        tmp_path / "logs/planted/embedding.log").read_text()

    smk(tmp_path, "--forcerun", "results/planted/data/train.parquet", overlays=(ov,), targets=target)
    assert train.read_bytes() == good and (emb / "vectors.npy").is_file()


@pytest.mark.usefixtures("restore_torch_state")  # run() seeds and sets deterministic kernels
def test_a_damaged_input_read_inside_a_job_is_one_line(tmp_path):
    """When a job does read a damaged file (e.g. damaged while the run was going), the shared reader ends it
    with one line naming the file and the rule to rerun, no pyarrow traceback."""
    import logging
    from types import SimpleNamespace

    from xaipipe.io import read_parquet
    from xaipipe.pipeline import run

    bad = tmp_path / "documents.parquet"
    bad.write_bytes(b"PAR1 not really")
    smk_obj = SimpleNamespace(log=[str(tmp_path / "job.log")], rule="explain", threads=1)
    with pytest.raises(SystemExit):
        run(smk_obj, lambda log: read_parquet(bad, rule="select_documents"))
    text = (tmp_path / "job.log").read_text()
    assert f"{bad} is damaged or truncated" in text and "output of rule select_documents" in text
    assert "Traceback" not in text and text.count("\n") == 1
    logging.getLogger().handlers.clear()


def test_an_impossible_validation_split_of_a_builtin_dataset_is_one_line(tmp_path):
    """Built-in data is only known once prepared: training checks the stratified validation split itself and
    ends with one line naming the model and the fix, not a scikit-learn traceback."""
    ov = {"datasets": ["planted"], "planted": {"data": {"n_train": 10, "n_test": 40},
                                               "models": {"teacher": {"val_fraction": 0.1}}}}
    res = smk(tmp_path, overlays=(ov,), targets=("results/planted/models/teacher/metrics.json",), check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs/planted/train_teacher.log").read_text()
    assert "planted.models.teacher: val_fraction = 0.1 of 10 training documents leaves a validation part" in log
    assert "set planted.models.teacher.val_fraction: 0" in log and "Traceback" not in log
