"""One place that makes a process reproducible: seeds and deterministic kernels.

:func:`seed_everything` seeds Python's ``random``, NumPy's global generator and torch (CPU and CUDA), and
switches torch to deterministic algorithms. Every Snakemake job calls it before its stage runs
(:func:`xaipipe.pipeline.setup`, with the rule's ``seed``), and every training entry point calls it
again (:func:`xaipipe.train.set_seed`), so a stage that never seeds anything itself still starts from
the same random state in every run: libraries that draw from the global generators (shap's partition
search breaks ties with ``np.random.randn()``) give the same result in a second run.

**Deterministic kernels.** ``torch.use_deterministic_algorithms(True)`` *selects* implementations:
without it, ``index_put_`` with ``accumulate=True`` -- also the backward of advanced indexing ``x[idx]`` --
adds float values on large tensors with atomic operations from several threads, and its sums differ from
call to call with two threads (``tests/test_determinism.py``). On the CPU the mode runs strict: the only
operations torch flags there without a deterministic implementation (``put_`` without ``accumulate``,
``MaxUnpool``) are not used by the pipeline, so code that starts using one fails at once instead of
warning. On a CUDA device the mode stays ``warn_only``: a kernel without a deterministic implementation
warns rather than stopping a long run, and GPU runs are not promised to be byte-identical (README
"Reproducibility").

What this cannot change: CPU kernels (MKL, oneDNN, torch's own vectorised reductions) split sums by the
number of threads and pick code paths by the processor's instruction set, so results are byte-identical
for the same thread count on the same kind of machine with the same library versions, and differ in the
last bits (and, through training, in the digits) across thread counts or processors (measured: a text CNN
trained on one thread, or with MKL and oneDNN held to AVX2 on an AVX-512 machine, saves other weights).
"""

from __future__ import annotations

import os
import random

import numpy as np


def _uses_cuda(device: object = None) -> bool:
    """Whether ``device`` (a name or ``torch.device``; None or ``auto``: CUDA if visible) is a CUDA device."""
    import torch

    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.cuda.is_available()
    return name.startswith("cuda")


def deterministic_kernels(device: object = None) -> None:
    """Switch torch to deterministic algorithms: strict (an operation without a deterministic
    implementation raises) unless ``device`` is a CUDA device, then ``warn_only``."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    torch.use_deterministic_algorithms(True, warn_only=_uses_cuda(device))
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def seed_everything(seed: int, device: object = None, deterministic: bool = True) -> None:
    """Seed ``random``, NumPy's global generator and torch with ``seed``; with ``deterministic``, also
    :func:`deterministic_kernels` for ``device``."""
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # every CUDA device too
    if deterministic:
        deterministic_kernels(device)


__all__ = ["deterministic_kernels", "seed_everything"]
