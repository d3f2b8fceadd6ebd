"""Checkpoints (issue #16): byte-identical saves, loading without unpickling arbitrary objects, one trainer
per resume checkpoint, no orphaned training process."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from xaipipe.models import TextCNN, load_checkpoint, save_checkpoint
from xaipipe.train import Split, fit

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
