"""Same config and seed -> byte-identical relevance and params files (wall times go to timing.json);
a different seed changes a stochastic method's map. Every job starts from the rule's seed with
deterministic kernels (strict on the CPU, warn-only on a GPU; xaipipe.determinism), so two runs on two
threads train the same bytes."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xaipipe.explain.stage import explain_documents, write_outputs
from xaipipe.models import TextCNN


def _files(tmp_path, name, seed, method):
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(30, 8, generator=g)
    emb[0] = 0
    torch.manual_seed(0)
    model = TextCNN(emb, 3, channels=6, kernel_size=2, hidden=[4]).eval()
    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 30, n) for n in (5, 9, 3)]
    docs = pd.DataFrame({"id": ["a", "b", "c"], "set": ["correct"] * 3, "ids": ids,
                         "tokens": [[f"w{i}" for i in d] for d in ids], "label": [0, 1, 2],
                         "pred": [int(model(torch.as_tensor(d)[None]).argmax()) for d in ids]})
    vocab = ["<pad>"] + [f"w{i}" for i in range(1, 30)]
    rel, info = explain_documents(model, docs, vocab, dict(method), seed)
    d = tmp_path / name
    d.mkdir()
    write_outputs(rel, info, str(d / "relevance.parquet"), str(d / "params.json"), str(d / "timing.json"))
    return (d / "relevance.parquet").read_bytes(), (d / "params.json").read_bytes()


def test_relevance_and_params_files_are_byte_identical(tmp_path):
    m = {"method": "rde", "steps": 5, "batch": 3, "noise": "gaussian"}
    a = _files(tmp_path, "a", 0, m)
    b = _files(tmp_path, "b", 0, m)
    c = _files(tmp_path, "c", 1, m)
    assert a == b
    assert a[0] != c[0]  # another seed, other Gaussian noise, another map
    assert (tmp_path / "a" / "timing.json").is_file()


def test_shap_partition_does_not_depend_on_the_global_numpy_state():
    """shap's Owen search breaks ties between spans of equal effect with ``np.random.randn()`` (the
    global generator, seeded from the OS in every new process): a document of one repeated word has
    such ties, and under a max_evals budget another global state expanded other spans."""
    from xaipipe.explain.surrogate import ShapExplainer

    g = torch.Generator().manual_seed(0)
    emb = torch.randn(50, 8, generator=g)
    emb[0] = 0
    torch.manual_seed(0)
    TextCNN(emb, 3, channels=4, kernel_size=1, hidden=[])  # the generator state the map below was found at
    model = TextCNN(emb, 3, channels=4, kernel_size=3, hidden=[]).eval()
    ex = ShapExplainer(model, max_evals=40, seed=0)
    doc = np.full(16, 7)
    maps = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        maps.append(ex.explain_one(doc, 0)[0])
        assert np.array_equal(np.random.get_state()[1], np.random.RandomState(global_seed).get_state()[1])
    assert maps[0].tobytes() == maps[1].tobytes()


# --- every job: seeded global generators, deterministic kernels, identical training on two threads -------
ROOT = Path(__file__).resolve().parents[1]

# A Snakemake job in miniature, as every script starts (pipeline.setup with threads: 2 and the rule's seed):
# what a stage might draw from the global generators, the backward of advanced indexing (index_put_ with
# accumulate) five times, and a small text CNN trained by the training loop.
_JOB = r"""
import hashlib, json, random
from types import SimpleNamespace
import numpy as np, torch
from xaipipe.pipeline import setup
setup(SimpleNamespace(threads=2, rule="demo", params=SimpleNamespace(seed=5, device="cpu")))
out = {"globals": [np.random.rand(3).tolist(), random.random(), torch.rand(2).tolist()],
       "kernels": [torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled()]}
g = torch.Generator().manual_seed(1)
v = torch.randn(2_000_000, generator=g)
idx = torch.randint(0, 4, (2_000_000,), generator=g)
sums = set()
for _ in range(5):
    x = torch.zeros(4, requires_grad=True)
    (x[idx] * v).sum().backward()
    sums.add(x.grad.numpy().tobytes())
out["index_put_sums"] = len(sums)

from xaipipe.models import TextCNN
from xaipipe.train import Split, fit
rng = np.random.default_rng(0)
def task(n):
    y = np.arange(n) % 2
    return Split([np.append(rng.integers(3, 200, 20), 1 + c).astype(np.int64) for c in y], y)
model = TextCNN(torch.randn(200, 32, generator=torch.Generator().manual_seed(0)), n_classes=2, channels=32,
                kernel_size=3, hidden=[16])
cfg = {"epochs": 1, "batch_size": 32, "lr": 0.01}
history, _ = fit(model, task(160), task(64), cfg, torch.device("cpu"), seed=5, desc="job")
weights = b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values())
out["trained"] = [hashlib.sha256(weights).hexdigest(), json.dumps(history)]
print(json.dumps(out))
"""


def test_two_runs_of_a_job_on_two_threads_are_identical():
    """Two jobs (separate processes, at the same time, two threads each): the global generators of Python,
    NumPy and torch start from the rule's seed, deterministic algorithms are on in strict mode, the sum of
    an indexed backward is the same in every call (without deterministic algorithms torch adds it with
    atomic float additions from both threads, a different result in most calls), and the trained weights
    and the training history are the same bytes."""
    import json
    import random
    import subprocess
    import sys

    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-c", _JOB], cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    runs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        runs.append(json.loads(out.splitlines()[-1]))
    a, b = runs
    seeded = [np.random.RandomState(5).rand(3).tolist(), random.Random(5).random(),
              torch.rand(2, generator=torch.Generator().manual_seed(5)).tolist()]
    assert a["globals"] == b["globals"] == seeded
    assert a["kernels"] == [2, True, False]
    assert a["index_put_sums"] == b["index_put_sums"] == 1
    assert a["trained"] == b["trained"]


# --- deterministic kernels -----------------------------------------------------------------------------
def test_kernels_are_strict_on_the_cpu_and_warn_only_on_a_gpu(restore_torch_state):
    """On the CPU an operation without a deterministic implementation raises (warn_only would let it through
    with a warning; the pipeline uses none); on a CUDA device it only warns, not to stop a long GPU run."""
    import pytest

    from xaipipe.determinism import deterministic_kernels
    from xaipipe.train import set_seed

    set_seed(0, device="cpu")
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(RuntimeError, match="deterministic"):
        torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))  # no deterministic version
    deterministic_kernels("cuda:0")  # only sets flags: no GPU needed
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
