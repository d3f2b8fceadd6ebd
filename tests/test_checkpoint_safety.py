"""Checkpoints (issue #16): byte-identical saves, loading without unpickling arbitrary objects, one trainer
per resume checkpoint, no orphaned training process."""

from __future__ import annotations

import builtins
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from xaipipe.errors import UnsafeFileError, XaipipeError

from xaipipe.models import TextCNN, load_checkpoint, save_checkpoint
from xaipipe.train import Split, fit, set_seed

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("torch_single_thread")

CPU = torch.device("cpu")
KWARGS = {"n_classes": 2, "channels": 6, "kernel_size": 3, "hidden": [5], "dropout": 0.5}


def small_cnn(seed: int = 0) -> TextCNN:
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(30, 8, generator=g)
    emb[0] = 0
    torch.manual_seed(seed)
    return TextCNN(emb, **KWARGS)


def tiny_task(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    docs = [rng.integers(1, 30, int(rng.integers(3, 9))).astype(np.int64) for _ in range(n)]
    return Split(docs, np.arange(n, dtype=np.int64) % 2)


def zip_names(path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return z.namelist()


# --- byte-identical checkpoints ------------------------------------------------------------------------

def test_two_saves_of_the_same_model_are_byte_identical_and_name_no_temporary_file(tmp_path):
    model = small_cnn()
    meta = {"vocab": [f"w{i}" for i in range(30)], "classes": ["a", "b"]}
    blobs = []
    for folder in ("a", "a", "b"):  # a rerun into the same place, and another folder
        path = tmp_path / folder / "model.pt"
        save_checkpoint(path, "text_cnn", dict(KWARGS), model, meta)
        blobs.append(path.read_bytes())
        assert not any(".tmp" in n for n in zip_names(path)), zip_names(path)
    assert blobs[0] == blobs[1] == blobs[2]


def test_xdistill_models_and_resume_checkpoints_name_no_temporary_file(tmp_path):
    from xaipipe.distill.xdistill import models as M

    spec = {"kind": "cae", "size": "small", "kwargs": {"in_channels": 3}}
    cae = M.build_from_spec(spec)
    for name in ("x1.pt", "x2.pt"):
        M.save_model(tmp_path / name, spec, cae, {"role": "cae"})
        assert not any(".tmp" in n for n in zip_names(tmp_path / name))
    assert (tmp_path / "x1.pt").read_bytes() == (tmp_path / "x2.pt").read_bytes()

    resume = tmp_path / "resume.pt"
    fit(small_cnn(), tiny_task(24, 0), tiny_task(8, 1), {"epochs": 2, "batch_size": 8}, CPU, 0, resume=resume)
    assert resume.is_file() and not any(".tmp" in n for n in zip_names(resume)), zip_names(resume)


def test_a_full_disk_while_saving_a_checkpoint_is_a_storage_error(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import resource, torch
        from xaipipe.errors import StorageError
        from xaipipe.io import save_torch
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            save_torch(torch.zeros(100_000), r"{tmp_path}/model.pt")
        except StorageError as exc:
            print("StorageError", "disk is full" in str(exc).lower())
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.stdout.strip() == "StorageError True", res.stderr
    assert not list(tmp_path.iterdir())


# --- loading never unpickles arbitrary objects -------------------------------------------------------

class RunsCode:
    """Unpickling this calls ``func(arg)``: ``os.system`` (a blocked module) or ``builtins.exec``."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def payloads(marker: Path) -> dict[str, RunsCode]:
    return {"os.system": RunsCode(os.system, f"touch '{marker}'"),
            "exec": RunsCode(builtins.exec, f"open(r'{marker}', 'w').close()")}


def crafted_model(path: Path, payload: RunsCode) -> Path:
    """A working text model (vocabulary, classes) whose metadata also holds ``payload``."""
    model = small_cnn()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    kwargs = {**KWARGS, "embedding": 30, "embedding_dim": 8}
    meta = {"vocab": ["<pad>", "space", "orbit"] + [f"w{i}" for i in range(27)], "classes": ["a", "b"],
            "tokenizer": {}, "note": payload}
    torch.save({"arch": "text_cnn", "kwargs": kwargs, "state_dict": state, "meta": meta}, path)
    return path


@pytest.mark.parametrize("how", ["os.system", "exec"])
def test_a_model_file_that_would_run_code_is_refused(tmp_path, how):
    marker = tmp_path / "marker"
    path = crafted_model(tmp_path / "model.pt", payloads(marker)[how])
    with pytest.raises(UnsafeFileError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert not marker.exists()
    assert "\n" not in msg and str(path) in msg and "could run code" in msg and "delete it" in msg, msg


@pytest.mark.parametrize("command", ["predict", "explain"])
def test_the_cli_refuses_a_model_file_that_would_run_code(tmp_path, command):
    marker = tmp_path / "marker"
    path = crafted_model(tmp_path / "model.pt", payloads(marker)["os.system"])
    extra = ["--method", "occlusion"] if command == "explain" else []
    res = subprocess.run([sys.executable, "-m", "xaipipe.cli", command, "--model", str(path), *extra, "space orbit"],
                         capture_output=True, text=True, cwd=ROOT)
    assert not marker.exists()
    assert res.returncode != 0 and res.stdout == ""
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "could run code" in res.stderr and str(path) in res.stderr


def test_a_resume_checkpoint_that_would_run_code_is_not_loaded(tmp_path, caplog):
    marker = tmp_path / "marker"
    train, val = tiny_task(24, 0), tiny_task(8, 1)
    cfg = {"epochs": 2, "batch_size": 8, "lr": 0.01}
    set_seed(0)
    ref_hist, _ = fit(small_cnn(), train, val, cfg, CPU, 0)
    resume = tmp_path / "resume.pt"
    torch.save({"fingerprint": "x", "epoch": 1, "history": [payloads(marker)["exec"]]}, resume)
    set_seed(0)
    with caplog.at_level(logging.WARNING):
        hist, _ = fit(small_cnn(), train, val, cfg, CPU, 0, resume=resume)
    assert not marker.exists()
    assert "could run code" in caplog.text and str(resume) in caplog.text
    assert hist == ref_hist  # trained from the start


def test_an_xdistill_model_file_that_would_run_code_is_refused(tmp_path):
    from xaipipe.distill.xdistill import models as M

    marker = tmp_path / "marker"
    spec = {"kind": "cae", "size": "small", "kwargs": {"in_channels": 3}}
    path = tmp_path / "cae.pt"
    torch.save({"spec": spec, "state_dict": M.build_from_spec(spec).state_dict(),
                "meta": {"role": payloads(marker)["os.system"]}}, path)
    with pytest.raises(UnsafeFileError, match="could run code"):
        M.load_model(path)
    assert not marker.exists()


def test_checkpoints_of_the_previous_format_load_when_they_hold_plain_data(tmp_path):
    """The previous writer: ``torch.save`` to the path; plain metadata loads as before, numpy numbers in
    the metadata (which the safe loader cannot rebuild) are refused with the fix."""
    model = small_cnn()
    kwargs = {**KWARGS, "embedding": 30, "embedding_dim": 8}
    old = {"arch": "text_cnn", "kwargs": kwargs, "state_dict": model.state_dict(),
           "meta": {"vocab": ["<pad>", "a"], "classes": ["x", "y"], "tokenizer": {"lowercase": True}}}
    torch.save(old, tmp_path / "model.pt")
    loaded, meta = load_checkpoint(tmp_path / "model.pt")
    assert meta == old["meta"] and torch.equal(loaded.embedding, model.embedding)
    torch.save({**old, "meta": {"accuracy": np.float64(0.5)}}, tmp_path / "numpy.pt")
    with pytest.raises(XaipipeError, match="delete it and rerun"):
        load_checkpoint(tmp_path / "numpy.pt")


def test_saved_metadata_is_plain(tmp_path):
    """numpy numbers and paths in metadata are written as Python numbers and strings; other objects are a
    programming error, reported when saving (never written into a model file)."""
    meta = {"acc": np.float64(0.25), "n": np.int64(3), "dims": np.arange(2), "src": Path("a/b"),
            "pair": (1, "x"), "nested": [{"k": None, "t": True}]}
    save_checkpoint(tmp_path / "model.pt", "text_cnn", dict(KWARGS), small_cnn(), meta)
    _, loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded == {"acc": 0.25, "n": 3, "dims": [0, 1], "src": "a/b", "pair": (1, "x"),
                      "nested": [{"k": None, "t": True}]}
    assert type(loaded["acc"]) is float and type(loaded["n"]) is int
    with pytest.raises(TypeError, match="meta"):
        save_checkpoint(tmp_path / "bad.pt", "text_cnn", dict(KWARGS), small_cnn(), {"x": object()})
    assert not (tmp_path / "bad.pt").exists()


# --- one trainer per checkpoint; no orphaned trainer --------------------------------------------------

HOLDER = r"""
import sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, {tests!r})
import xaipipe.train as T
from test_checkpoint_safety import small_cnn, tiny_task

torch.set_num_threads(1)
ready = Path({ready!r})
real = T.predict

def slow_predict(*args, **kwargs):  # the first epoch is done: hold the checkpoint for a while
    ready.write_text("training")
    time.sleep(120)
    return real(*args, **kwargs)

T.predict = slow_predict
T.fit(small_cnn(), tiny_task(24, 0), tiny_task(8, 1), {{"epochs": 3, "batch_size": 8}}, torch.device("cpu"), 0,
      resume={resume!r})
"""


def wait_for(predicate, seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_second_trainer_is_refused_while_another_process_holds_the_checkpoint(tmp_path):
    import socket

    from xaipipe.errors import CheckpointInUseError

    resume, ready = tmp_path / "model" / "resume.pt", tmp_path / "ready"
    code = HOLDER.format(tests=str(ROOT / "tests"), ready=str(ready), resume=str(resume))
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: ready.exists() or holder.poll() is not None, 120), "the holder did not start"
        assert holder.poll() is None, holder.stderr.read()
        listing = lambda: sorted(p.name for p in resume.parent.glob("*"))  # noqa: E731
        before = listing()
        with pytest.raises(CheckpointInUseError) as info:
            fit(small_cnn(), tiny_task(24, 0), tiny_task(8, 1), {"epochs": 3, "batch_size": 8}, CPU, 0, resume=resume)
        msg = str(info.value)
        assert f"pid {holder.pid}" in msg and socket.gethostname() in msg and f"kill {holder.pid}" in msg, msg
        assert str(resume) in msg and "\n" not in msg
        assert listing() == before  # nothing touched
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (killed: its lock file stays behind, unlocked): the checkpoint is free again
    hist, _ = fit(small_cnn(), tiny_task(24, 0), tiny_task(8, 1), {"epochs": 3, "batch_size": 8}, CPU, 0, resume=resume)
    assert len(hist) == 3 and not (tmp_path / "model" / "resume.pt.lock").exists()


def test_the_checkpoint_lock_is_reentrant_and_released(tmp_path):
    from xaipipe.process import hold_lock

    lock = tmp_path / "x" / "resume.pt.lock"
    with hold_lock(lock, "x"):
        with hold_lock(lock, "x"):  # _run holds it around fit, which takes it again
            assert lock.is_file()
        assert lock.is_file()
    assert not lock.exists()


ORPHAN = r"""
import os, sys, time
from pathlib import Path
{setup}
Path({pidfile!r}).write_text(str(os.getpid()))
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux only")
def test_a_job_dies_with_its_parent(tmp_path):
    """A parent (standing in for Snakemake) starts a job that called die_with_parent, and is SIGKILLed: the
    job ends too, instead of training on as an orphan."""
    import signal

    pidfile = tmp_path / "job.pid"
    job = ORPHAN.format(setup="from xaipipe.process import die_with_parent\nassert die_with_parent()",
                        pidfile=str(pidfile))
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {job!r}])\ntime.sleep(120)"],
                              cwd=ROOT, start_new_session=True)
    try:
        assert wait_for(pidfile.exists, 60), "the job did not start"
        pid = int(pidfile.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_for(lambda: not alive(pid), 10), "the job outlived its parent"
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # whatever is left of the group


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux only")
def test_a_snakemake_job_dies_when_snakemake_is_killed(tmp_path):
    """SIGKILL of Snakemake alone (not its process group): the script job (here one that would run for two
    minutes) ends too, so a rerun after --unlock never meets a trainer still writing its checkpoint."""
    import signal

    pidfile = tmp_path / "job.pid"
    (tmp_path / "job.py").write_text(
        "import os, time\nfrom pathlib import Path\nfrom xaipipe.pipeline import run\n\n"
        "def main(log):\n"
        f"    Path({str(pidfile)!r}).write_text(str(os.getpid()))\n"
        "    time.sleep(120)\n\n"
        "run(snakemake, main)\n")
    (tmp_path / "Snakefile").write_text('rule job:\n    output: "out.txt"\n    log: "job.log"\n    script: "job.py"\n')
    smk = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([str(smk), "-c1", "--quiet"], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(pidfile.exists, 120), "the job did not start"
        pid = int(pidfile.read_text())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_for(lambda: not alive(pid), 10), "the job outlived Snakemake"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_a_file_system_without_locks_trains_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno

    import xaipipe.process as P

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(P.fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING):
        hist, _ = fit(small_cnn(), tiny_task(24, 0), tiny_task(8, 1), {"epochs": 2, "batch_size": 8}, CPU, 0,
                      resume=tmp_path / "resume.pt")
    assert len(hist) == 2 and "cannot lock" in caplog.text and "No locks available" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume.pt"]
