"""Benchmarks of the first-layer fast path (xaipipe.models.fast) against the direct path and the
libraries, on the full-size 20NG teacher (Conv1d 300 -> 1280, kernel 5, hidden 256, 20 classes, random
weights) and 400-word documents. Not a test: run it by hand and copy the table into bench/README.md.

    python bench/bench_fast.py                 # everything (~5-10 min on 2 cores)
    python bench/bench_fast.py --only greedy occlusion --threads 1
    python bench/bench_fast.py --quick         # smaller sample counts, for a smoke run

Every row compares the two results for real (identical picks/orders, values within float tolerance; the
measured difference beside ``equal`` where it is a tolerance) and records the ratio, or, where the
reference computes something else (Captum's default Lime, Kernel SHAP), says ``not compared: <why>``. Results: bench/results/<host>-<date>.{json,md} and scaling.png.
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
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xaipipe.evaluate.deletion import deletion_curves, deletion_curves_naive  # noqa: E402
from xaipipe.evaluate.distortion import distortion_curves  # noqa: E402
from xaipipe.explain import get_explainer  # noqa: E402
from xaipipe.explain.base import pad_embedded  # noqa: E402
from xaipipe.explain.greedy import greedy_batched, greedy_naive  # noqa: E402
from xaipipe.models import TextCNN  # noqa: E402
from xaipipe.models.fast import DocumentProjection, direct_path  # noqa: E402

VOCAB, EMB, CLASSES = 5000, 300, 20


def teacher(channels: int = 1280, seed: int = 0) -> TextCNN:
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(VOCAB, EMB, generator=g)
    emb = emb / emb.norm(dim=1, keepdim=True)  # unit-length vectors, as the pipeline's embeddings
    emb[0] = 0
    torch.manual_seed(seed)
    return TextCNN(emb, CLASSES, channels=channels, kernel_size=5, hidden=[256]).eval()


def document(length: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, VOCAB, length)


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


ROW_KEYS = ("benchmark", "fast_s", "reference", "reference_s", "ratio", "equal")


def row(name, fast_s, ref_s, ref_name, equal, details=None, **extra):
    """``equal``: the outcome of a real comparison of the two results (bool), or a string
    ``"not compared: <reason>"`` where the two sides compute different things."""
    if isinstance(equal, str) and not equal.startswith("not compared: "):
        raise ValueError(f"equal must be a comparison result or 'not compared: <reason>', not {equal!r}")
    r = {"benchmark": name, "fast_s": round(fast_s, 4), "reference": ref_name, "reference_s": round(ref_s, 4),
         "ratio": round(ref_s / fast_s, 1) if fast_s > 0 else None,
         "equal": equal if isinstance(equal, str) else bool(equal)}
    r.update(details or {})
    r.update(extra)
    more = "".join(f" {k}={v}" for k, v in {**(details or {}), **extra}.items())
    print(f"{name:<34} fast {fast_s:8.3f} s | {ref_name:<34} {ref_s:8.3f} s | x{r['ratio']:<7} equal={equal}{more}",
          flush=True)
    return r


def bench_greedy(m, doc, quick):
    out = []
    x, lengths = pad_embedded(m, [doc])
    tgt = int(m.forward_embedded(x, lengths).argmax())
    allowed = torch.ones(1, len(doc), dtype=torch.bool)
    ex = get_explainer("greedy", m, k=10)
    tf, fast = timed(lambda: ex.attribute([doc], [tgt])[0], 3)
    with direct_path():
        td, (picks, _) = timed(lambda: greedy_batched(m, x, lengths, torch.tensor([tgt]), allowed, 10, max_batch=128))
    out.append(row("greedy top-10 (400 words)", tf, td, "direct batched forwards", fast.extra["order"] == picks[0].tolist()))
    k_loop = 1 if quick else 2
    tl, loop = timed(lambda: greedy_naive(m, doc, tgt, k_loop))
    tf2, fast2 = timed(lambda: get_explainer("greedy", m, k=k_loop).attribute([doc], [tgt])[0], 3)
    out.append(row(f"greedy top-{k_loop} (400 words)", tf2, tl, "per-candidate loop (Algorithm 1)",
                   fast2.extra["order"] == loop))
    return out


def bench_occlusion(m, doc, quick):
    from captum.attr import FeatureAblation

    x, lengths = pad_embedded(m, [doc])
    tgt = int(m.forward_embedded(x, lengths).argmax())
    ex = get_explainer("occlusion", m)
    tf, fast = timed(lambda: ex.attribute([doc], [tgt])[0].relevance, 3)
    mask = torch.arange(len(doc)).view(1, -1, 1)
    with torch.no_grad():
        tc, cap = timed(lambda: FeatureAblation(m.forward_embedded).attribute(
            x, baselines=0.0, target=tgt, additional_forward_args=(lengths,), feature_mask=mask,
            perturbations_per_eval=16)[0, :, 0].numpy())

    def loop():
        vals = []
        with torch.no_grad():
            full = float(m.forward_embedded(x)[0, tgt])
            for j in range(len(doc)):
                xd = x.clone()
                xd[0, j] = 0
                vals.append(full - float(m.forward_embedded(xd)[0, tgt]))
        return np.array(vals)
    tl, ref = (None, None) if quick else timed(loop)
    out = [row("occlusion (400 words)", tf, tc, "Captum FeatureAblation ppe=16", np.allclose(fast, cap, atol=1e-3))]
    if ref is not None:
        out.append(row("occlusion (400 words)", tf, tl, "direct loop (one forward/word)", np.allclose(fast, ref, atol=1e-3)))
    return out


def bench_surrogates(m, doc, quick):
    """LIME/SHAP: (1) the model evaluations alone -- the masked documents LIME samples, through
    PresenceModel, fast vs direct; (2) the whole explanation (second call: shap's numba kernels are
    compiled on the first), whose remainder is library time (lime's Ridge fit, shap's partition tree)."""
    from xaipipe.explain.surrogate import PresenceModel, lime_neighbourhood

    out = []
    x, lengths = pad_embedded(m, [doc])
    tgt = int(m.forward_embedded(x, lengths).argmax())
    n_lime = 300 if quick else 1000
    masks = lime_neighbourhood(len(doc), n_lime, np.random.RandomState(0))
    tf, fast = timed(lambda: PresenceModel(m, doc, tgt)(masks), 2)
    with direct_path():
        td, direct = timed(lambda: PresenceModel(m, doc, tgt)(masks))
    out.append(row(f"masked evaluations ({n_lime} LIME masks)", tf, td, "direct (full masked documents)",
                   np.allclose(fast, direct, atol=1e-5)))
    for method, params, label in [("lime", {"num_samples": n_lime, "seed": 0}, f"LIME {n_lime} samples"),
                                  ("shap", {"max_evals": 500, "seed": 0}, "SHAP partition 500 evals")]:
        tf, fast = timed(lambda: get_explainer(method, m, **params).attribute([doc], [tgt])[0].relevance, 2)
        with direct_path():
            td, direct = timed(lambda: get_explainer(method, m, **params).attribute([doc], [tgt])[0].relevance)
        out.append(row(label + " (whole method)", tf, td, "direct (full masked documents)",
                       np.allclose(fast, direct, atol=1e-4)))
    if not quick:  # the libraries on the same model and document
        from captum.attr import KernelShap, Lime

        mask = torch.arange(len(doc)).view(1, -1, 1)
        with torch.no_grad():
            tcl, _ = timed(lambda: Lime(m.forward_embedded).attribute(
                x, target=tgt, additional_forward_args=(lengths,), feature_mask=mask, n_samples=500,
                perturbations_per_eval=16, baselines=0.0))
            tck, kernel_shap = timed(lambda: KernelShap(m.forward_embedded).attribute(
                x, target=tgt, additional_forward_args=(lengths,), feature_mask=mask, n_samples=500,
                perturbations_per_eval=16, baselines=0.0))
        tf5, ours5 = timed(lambda: get_explainer("lime", m, num_samples=500, seed=0).attribute([doc], [tgt])[0].relevance)
        out.append(row("LIME 500 samples", tf5, tcl, "Captum Lime 500 samples (its defaults)",
                       "not compared: Captum's default Lime samples every word with probability 1/2, weights by "
                       "an exponential cosine kernel of width 1 and fits Lasso(alpha=0.01) to the logit; the "
                       "pipeline's LIME is lime's text neighbourhood, kernel and Ridge on the probability"))
        tca, captum_as_lime = timed(lambda: captum_lime_as_lime(m, x, lengths, tgt, doc, 500, seed=0))
        out.append(row("LIME 500 samples", tf5, tca, "Captum Lime, lime's sampling/kernel/Ridge",
                       *agreement(ours5, captum_as_lime)))
        pipeline_shap = get_explainer("shap", m, max_evals=500, seed=0).attribute([doc], [tgt])[0].relevance
        agree = float(spearmanr(pipeline_shap, kernel_shap[0, :, 0].numpy()).statistic)
        out.append(row("SHAP 500 evals", out[2]["fast_s"], tck, "Captum KernelShap 500 samples",
                       "not compared: Kernel SHAP estimates Shapley values from sampled coalitions (weighted "
                       "regression on the logit); the pipeline's SHAP is shap's PartitionExplainer (Owen values of "
                       "a span tree within 500 evaluations, on the probability), a different quantity",
                       spearman_with_pipeline=round(agree, 3)))
        out.append(bench_lime_package(m, doc, tgt))
        out.append(bench_shap_package(m, doc, tgt, out[2]["fast_s"]))
    return out


def agreement(ours, theirs, rtol=1e-3):
    """(equal, extras): the largest difference of the two weight vectors relative to the largest weight;
    equal within ``rtol``. The two sides fit the same neighbourhood; what differs is float rounding: the
    model's float32 outputs (fast path vs full forwards, other batches; about 4e-6 relative in the weights
    of the ridge fit) and, for Captum, a float32 ridge regression (lime fits in float64)."""
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    rel = float(np.abs(ours - theirs).max() / max(np.abs(ours).max(), 1e-12))
    return rel <= rtol, {"max_rel_diff": float(f"{rel:.3g}")}


def captum_lime_as_lime(m, x, lengths, tgt, doc, n_samples, seed):
    """Captum's Lime set up to compute what the pipeline's LIME computes: the same neighbourhood (lime's
    text sampling from the same seeded RandomState, row 0 = the document), lime's text kernel on the
    cosine distance x 100 (width 25), sklearn's Ridge(alpha=1) on the target probability, zero vectors for
    absent words. Returns the ``(L,)`` weights."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    from xaipipe.explain.surrogate import _doc_seed, _lime_kernel, lime_neighbourhood

    rows = lime_neighbourhood(len(doc), n_samples, np.random.RandomState(_doc_seed(seed, doc)))
    samples = iter(torch.as_tensor(rows, dtype=torch.float32))

    def perturb(original, **kwargs):
        return next(samples)[None]

    def similarity(original, perturbed, z, **kwargs):
        z = z.double().reshape(-1)
        s = float(z.sum())  # cosine distance of a 0/1 vector to the all-ones one; all words absent: 1
        d = 1.0 - s / (np.sqrt(s) * np.sqrt(z.numel())) if s > 0 else 1.0
        return float(_lime_kernel(np.asarray(d * 100.0), 25.0))

    def prob(xb, lb):
        return torch.softmax(m.forward_embedded(xb, lb).double(), 1)

    mask = torch.arange(len(doc)).view(1, -1, 1)
    lime = Lime(prob, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=similarity, perturb_func=perturb)
    with torch.no_grad():
        w = lime.attribute(x, target=tgt, additional_forward_args=(lengths,), feature_mask=mask,
                           n_samples=n_samples, perturbations_per_eval=16, baselines=0.0)
    return w[0, :, 0].double().numpy()


def bench_lime_package(m, doc, tgt):
    from lime.lime_text import LimeTextExplainer

    words = [f"w{i}" for i in doc]
    text = " ".join(words)

    @torch.no_grad()
    def classifier_fn(texts):
        docs = [[int(w[1:]) if w[1:].isdigit() else 0 for w in t.split()] or [0] for t in texts]  # UNKWORDZ -> 0
        probs = []
        for i in range(0, len(docs), 128):
            xb, lb = pad_embedded(m, [np.asarray(d) for d in docs[i:i + 128]])
            probs.append(torch.softmax(m.forward_embedded(xb, lb), 1).numpy())
        return np.concatenate(probs)

    from xaipipe.explain.surrogate import _doc_seed

    # the pipeline's LIME draws its neighbourhood from RandomState(_doc_seed(seed, doc)) exactly as
    # LimeTextExplainer does from its random_state: seeded alike, both fit the same data
    def explain():
        expl = LimeTextExplainer(bow=False, split_expression=r"\s+", random_state=_doc_seed(0, doc),
                                 feature_selection="none")
        exp = expl.explain_instance(text, classifier_fn, labels=(tgt,), num_features=len(doc), num_samples=1000)
        w = np.zeros(len(doc))
        for j, v in exp.local_exp[tgt]:
            w[int(j)] = v
        return w
    tl, theirs = timed(explain)
    tf, ours = timed(lambda: get_explainer("lime", m, num_samples=1000, seed=0).attribute([doc], [tgt])[0].relevance)
    return row("LIME 1000 samples", tf, tl, "lime package LimeTextExplainer (same seed)",
               *agreement(ours, theirs, 1e-4))


def bench_shap_package(m, doc, tgt, fast_s):
    """The pipeline's SHAP against ``shap.PartitionExplainer`` called here on its own model function (the
    documents with absent words set to zero vectors, full forwards), with the same masker (one all-zeros
    background row, the balanced span tree), ``max_evals`` and ``batch_size`` (the partition explainer
    expands ``batch_size`` nodes per round, so it changes which nodes the budget reaches): Owen values are deterministic, so the two
    must agree up to float rounding of the model outputs."""
    import shap

    from xaipipe.explain.surrogate import span_tree

    x, lengths = pad_embedded(m, [doc])

    @torch.no_grad()
    def f(z):
        z = torch.as_tensor(np.asarray(z), dtype=x.dtype)
        probs = []
        for i in range(0, len(z), 128):
            zb = z[i:i + 128]
            xb = x * zb[:, :, None]
            probs.append(torch.softmax(m.forward_embedded(xb, lengths.expand(len(zb))).double(), 1)[:, tgt])
        return torch.cat(probs).numpy()

    def explain():
        masker = shap.maskers.Partition(np.zeros((1, len(doc))), clustering=span_tree(len(doc)))
        return shap.PartitionExplainer(f, masker)(np.ones((1, len(doc))), max_evals=500, batch_size=128,
                                                  silent=True).values[0]
    explain()  # shap compiles its numba kernels on the first call, as the pipeline's timing excludes them
    tl, theirs = timed(explain)
    ours = get_explainer("shap", m, max_evals=500, batch_size=128, seed=0).attribute([doc], [tgt])[0].relevance
    return row("SHAP 500 evals", fast_s, tl, "shap package PartitionExplainer (same masker)",
               *agreement(ours, theirs, 1e-4))


def bench_deletion(m, quick):
    n_docs = 4 if quick else 8
    docs = [document(400, seed=s) for s in range(n_docs)]
    rng = np.random.default_rng(0)
    orders = [rng.permutation(400) for _ in docs]
    classes = np.zeros(n_docs, dtype=np.int64)
    out = []
    for mode, kw in [("zero", {}), ("neutral", {"neutral_ids": list(range(1, 17))}), ("gaussian", {"n_draws": 16})]:
        tf, fast = timed(lambda: deletion_curves(m, docs, orders, classes, K=20, mode=mode, **kw))
        with direct_path():
            td, direct = timed(lambda: deletion_curves(m, docs, orders, classes, K=20, mode=mode, **kw))
        eq = np.array_equal(fast["correct"], direct["correct"]) and np.allclose(fast["prob"], direct["prob"], atol=1e-5)
        out.append(row(f"deletion curves {mode} ({n_docs}x400w, K=20)", tf, td, "direct batched forwards", eq))
        if mode == "zero":
            tn, naive = timed(lambda: deletion_curves_naive(m, docs, orders, classes, K=20, mode=mode, **kw))
            eq = np.array_equal(fast["correct"], naive["correct"])
            out.append(row(f"deletion curves {mode} ({n_docs}x400w, K=20)", tf, tn, "step loop (one forward per k)", eq))
    with direct_path():
        td, direct = timed(lambda: distortion_curves(m, docs, orders, classes, K=20, n_draws=16))
    tf, fast = timed(lambda: distortion_curves(m, docs, orders, classes, K=20, n_draws=16))
    eq = all(np.allclose(fast[f], direct[f], rtol=1e-3, atol=1e-3) for f in fast)
    out.append(row(f"distortion curves ({n_docs}x400w, K=20, 16 draws)", tf, td, "direct batched forwards", eq))
    return out


def bench_rde(m, quick):
    out = []
    docs = [document(400, seed=s) for s in range(2)]
    neutral = list(range(1, 17)) if quick else list(range(1, 65))
    steps = 3
    kw = dict(noise="neutral", neutral_ids=neutral, steps=steps, loss="l2")
    tf, fast = timed(lambda: get_explainer("rde", m, **kw).attribute(docs))
    with direct_path():
        td, direct = timed(lambda: get_explainer("rde", m, **kw).attribute(docs))
    eq = all(np.allclose(f.relevance, d.relevance, atol=1e-3) for f, d in zip(fast, direct))
    out.append(row(f"RDE neutral ({len(neutral)} words) per step, per doc", tf / steps / 2, td / steps / 2,
                   "direct forward/backward", eq))
    for n_docs, batch in [(1, 16), (4, 16)]:
        gd = [document(400, seed=s) for s in range(n_docs)]
        tg, _ = timed(lambda: get_explainer("rde", m, noise="gaussian", batch=batch, steps=steps,
                                            batch_docs=n_docs).attribute(gd))
        r = {"benchmark": f"RDE gaussian {n_docs} docs x {batch} draws", "seconds_per_step": round(tg / steps, 3),
             "docs_per_second_per_step": round(n_docs * steps / tg, 3)}
        print(r, flush=True)
        out.append(r)
    return out


def bench_scaling(quick):
    """Cost of 64 masked copies, fast vs direct, against document length and channels; fit c·N·C."""
    rows = []
    lengths = [100, 200, 400] if quick else [100, 200, 400, 800]
    channels = [320, 1280] if quick else [320, 640, 1280]
    for c in channels:
        m = teacher(c)
        for n in lengths:
            doc = document(n)
            x = m.embed(torch.as_tensor(doc)[None])[0]
            keep = (torch.rand(64, n, generator=torch.Generator().manual_seed(0)) > 0.5).float()
            with torch.no_grad():
                tp, proj = timed(lambda: DocumentProjection(m, x), 2)
                tf, _ = timed(lambda: proj.logits(keep), 2)
                td, _ = timed(lambda: m.forward_embedded(x[None] * keep[:, :, None]), 2)
            rows.append({"channels": c, "length": n, "projection_s": tp, "fast_64_s": tf, "direct_64_s": td})
            print(rows[-1], flush=True)
    return rows


def fit_and_plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nc = np.array([r["length"] * r["channels"] for r in rows], dtype=float)
    fits = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in [("fast_64_s", "fast path (64 copies)"), ("direct_64_s", "direct forward (64 copies)"),
                       ("projection_s", "tap projections (once per document)")]:
        y = np.array([r[key] for r in rows])
        a = np.vstack([np.ones_like(nc), nc]).T
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        fits[key] = {"intercept_s": float(coef[0]), "s_per_word_channel": float(coef[1])}
        ax.loglog(nc, y, "o", label=label)
        xs = np.linspace(nc.min(), nc.max(), 50)
        ax.loglog(xs, np.maximum(coef[0] + coef[1] * xs, 1e-6), "-", alpha=0.5)
    ax.set_xlabel("document length x channels (N·C)")
    ax.set_ylabel("seconds")
    ax.set_title("Cost of 64 perturbed copies: linear in N·C")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fits


def save(results, out, args):
    stem = f"{socket.gethostname()}-{dt.date.today().isoformat()}-t{args.threads}"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1))
    lines = ["| benchmark | fast (s) | reference | reference (s) | ratio | equal |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if "fast_s" in r:
            more = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ROW_KEYS)
            lines.append(f"| {r['benchmark']} | {r['fast_s']} | {r['reference']} | {r['reference_s']} | "
                         f"{r['ratio']}x | {r['equal']}{f' ({more})' if more else ''} |")
        else:
            lines.append(f"| {r['benchmark']} | {r['seconds_per_step']} s/step | | | "
                         f"{r['docs_per_second_per_step']} doc-steps/s | |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None,
                    choices=["greedy", "occlusion", "surrogates", "deletion", "rde", "scaling"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = teacher()
    doc = document(400)
    want = args.only or ["greedy", "occlusion", "surrogates", "deletion", "rde", "scaling"]
    results = {"machine": {"host": socket.gethostname(), "platform": platform.platform(),
                           "processor": platform.processor(), "torch": torch.__version__,
                           "threads": args.threads, "cuda": torch.cuda.is_available(),
                           "date": dt.datetime.now().isoformat(timespec="seconds")},
               "rows": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(False):
        for name in want:
            if name == "scaling":
                rows = bench_scaling(args.quick)
                results["scaling"] = rows
                results["scaling_fit"] = fit_and_plot(rows, out / "scaling.png")
            else:
                results["rows"] += globals()[f"bench_{name}"](m, doc, args.quick) if name in (
                    "greedy", "occlusion", "surrogates") else globals()[f"bench_{name}"](m, args.quick)
            save(results, out, args)  # after every part: an interrupted run keeps what it measured
    save(results, out, args)


if __name__ == "__main__":
    main()
