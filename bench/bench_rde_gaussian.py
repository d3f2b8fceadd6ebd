"""RDE with Gaussian noise on the first-layer fast path (issue "report scale", item 2), side by side with the
direct path, on the full-size 20NG teacher (Conv1d 300 -> 1280, kernel 5, hidden 256, 20 classes, random
weights) and 400-word documents. Not a test: run it by hand and copy the table into bench/README.md.

    python bench/bench_rde_gaussian.py                # one step and a whole explanation, 1280 and 512 channels
    python bench/bench_rde_gaussian.py --threads 1 --channels 1280

Rows:

* ``step``: one RDE step (objective + gradient in ``s``) with 16 noise draws. Reference: the direct forward and
  backward of the 16 noise documents (what the explainer did for Gaussian noise before). Equality: the fast
  objective and gradient equal the direct ones for *the same draws* (windows of the same pool), within
  float tolerance; a fresh-draw step is timed too (the cost without a pool).
* ``explain``: a whole RDE-L2 explanation (30 steps, 16 draws, the default preset) of one document, fast vs
  ``direct_path()`` with the same pool and offsets: equal maps (max abs difference reported).

Results: bench/results/rde_gaussian-<host>-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_fast import document, teacher, timed  # noqa: E402
from xaipipe.explain import get_explainer  # noqa: E402
from xaipipe.explain.base import pad_embedded  # noqa: E402
from xaipipe.explain.rde import _GaussianNoise, _PoolNoise, _Sampler, embedding_noise_stats, rde_objective  # noqa: E402
from xaipipe.explain.rde import rde_objective_windows  # noqa: E402
from xaipipe.models.fast import DocumentProjection, direct_path  # noqa: E402


def bench_step(m, length: int, draws: int, repeat: int) -> list[dict]:
    doc = document(length)
    x, lengths = pad_embedded(m, [doc])
    stats = embedding_noise_stats(m)
    with torch.no_grad():
        ref = m.forward_embedded(x, lengths)
    tgt = ref.argmax(1)
    lam = torch.tensor([0.3])
    pen = torch.ones(1, length, dtype=torch.bool)
    s0 = torch.rand(1, length, generator=torch.Generator().manual_seed(0))
    pool = _PoolNoise(lengths, length, draws, 0, _Sampler(x.shape[2], x.device, x.dtype, stats), 1.0, m.kernel_size)
    offs = pool.offsets()
    proj = DocumentProjection(m, x[0])
    rpool = proj.project(pool.pools[0])
    _ = proj.pt  # the tap projections: once per document, not per step

    def fast():
        s = s0.clone().requires_grad_(True)
        val = rde_objective_windows([proj], [rpool], offs, lengths, s, ref, tgt, lam, pen, "l2")
        return val.detach(), torch.autograd.grad(val.sum(), s)[0]

    def direct(noise):
        s = s0.clone().requires_grad_(True)
        val = rde_objective(m, x, lengths, s, noise, ref, tgt, lam, pen, "l2")
        return val.detach(), torch.autograd.grad(val.sum(), s)[0]

    same = pool.draw(offs).clone()
    fresh = _GaussianNoise(lengths, length, x.shape[2], draws, 0, x.device, x.dtype, stats).draw().clone()
    fast()  # compile the loop (numba caches it on disk)
    t_fast, (vf, gf) = timed(fast, repeat)
    t_same, (vd, gd) = timed(lambda: direct(same), repeat)
    t_fresh, _ = timed(lambda: direct(fresh), repeat)
    dv, dg = float((vf - vd).abs().max()), float((gf - gd).abs().max())
    equal = dv <= 1e-4 * max(1.0, float(vd.abs().max())) and dg <= 1e-4 * max(1.0, float(gd.abs().max()))
    return [{"benchmark": f"RDE Gaussian step, {m.conv.out_channels} ch, {length} words, {draws} draws",
             "fast_s": round(t_fast, 4), "direct_same_draws_s": round(t_same, 4),
             "direct_fresh_draws_s": round(t_fresh, 4), "ratio": round(t_same / t_fast, 1),
             "equal": bool(equal), "max_abs_diff_value": dv, "max_abs_diff_grad": dg}]


def bench_explain(m, length: int, steps: int, draws: int) -> list[dict]:
    doc = document(length, seed=2)
    params = {"loss": "l2", "lam": 0.3, "steps": steps, "batch": draws, "lr": 0.1, "seed": 0}
    t_fast, fast = timed(lambda: get_explainer("rde", m, **params).attribute([doc])[0].relevance)
    with direct_path():
        t_direct, direct = timed(lambda: get_explainer("rde", m, **params).attribute([doc])[0].relevance)
    diff = float(np.abs(fast - direct).max())
    return [{"benchmark": f"RDE-L2 explanation, {m.conv.out_channels} ch, {length} words, {steps} steps x {draws}",
             "fast_s": round(t_fast, 3), "direct_same_draws_s": round(t_direct, 3), "direct_fresh_draws_s": None,
             "ratio": round(t_direct / t_fast, 1), "equal": diff < 1e-2, "max_abs_diff_map": diff}]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels", type=int, nargs="+", default=[1280, 512])
    ap.add_argument("--length", type=int, default=400)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for ch in args.channels:
        m = teacher(ch)
        rows += bench_step(m, args.length, args.draws, args.repeat)
        rows += bench_explain(m, args.length, args.steps, args.draws)
        for r in rows[-2:]:
            print(json.dumps(r), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"rde_gaussian-{socket.gethostname()}-{dt.date.today().isoformat()}"
    meta = {"threads": args.threads, "python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "load_average": list(__import__("os").getloadavg())}
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["| benchmark | fast (s) | direct, same draws (s) | direct, fresh draws (s) | ratio | equal |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['fast_s']} | {r['direct_same_draws_s']} | "
                     f"{r['direct_fresh_draws_s'] if r['direct_fresh_draws_s'] is not None else '-'} | "
                     f"{r['ratio']}x | {r['equal']} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
