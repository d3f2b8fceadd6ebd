"""The first-layer fast path (xaipipe.models.fast) against the direct path (full forwards of perturbed
copies): values within float tolerance, picks and orderings exactly."""

import numpy as np
import pytest
import torch

from xaipipe.evaluate.deletion import deletion_curves, deletion_curves_naive
from xaipipe.evaluate.distortion import distortion_curves
from xaipipe.explain import get_explainer
from xaipipe.explain.greedy import greedy_batched, greedy_fast
from xaipipe.explain.rde import rde_objective, rde_objective_fast
from xaipipe.models import MLP, TextCNN
from xaipipe.models.fast import DocumentProjection, direct_path, greedy_step_values, has_fast_path, use_fast_path

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def make_model(seed=0, channels=24, kernel=3, vocab=60, emb=12, classes=4, hidden=(16,)):
    g = torch.Generator().manual_seed(seed)
    emb_t = torch.randn(vocab, emb, generator=g)
    emb_t[0] = 0
    torch.manual_seed(seed)
    m = TextCNN(emb_t, classes, channels=channels, kernel_size=kernel, hidden=list(hidden), dropout=0.3)
    with torch.no_grad():
        m.conv.bias.normal_(0, 0.5)
    return m.eval()


def docs_of(lengths, vocab=60, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, vocab, n) for n in lengths]


@pytest.mark.parametrize("length", [1, 2, 3, 7, 30])
def test_masked_logits_equal_direct_forward(length):
    m = make_model()
    x = m.embed(torch.as_tensor(docs_of([length])[0])[None])[0]
    proj = DocumentProjection(m, x)
    g = torch.Generator().manual_seed(length)
    keep = torch.rand(9, length, generator=g)
    keep[:4] = (keep[:4] > 0.5).float()
    r = torch.randn(9, x.shape[1], generator=g)
    with torch.no_grad():
        zero = m.forward_embedded(x[None] * keep[:, :, None])
        repl = m.forward_embedded(x[None] * keep[:, :, None] + (1 - keep[:, :, None]) * r[:, None])
        assert torch.allclose(proj.logits(keep), zero, atol=1e-5)
        assert torch.allclose(proj.logits(keep, proj.project(r)), repl, atol=1e-5)
        # one replacement vector for every copy broadcasts
        one = m.forward_embedded(x[None] * keep[:, :, None] + (1 - keep[:, :, None]) * r[:1, None])
        assert torch.allclose(proj.logits(keep, proj.project(r[0])), one, atol=1e-5)


def test_small_chunks_give_the_same_result():
    m = make_model()
    x = m.embed(torch.as_tensor(docs_of([25])[0])[None])[0]
    proj = DocumentProjection(m, x)
    keep = (torch.rand(7, 25, generator=torch.Generator().manual_seed(0)) > 0.3).float()
    with torch.no_grad():
        want = proj.logits(keep)
        proj.chunk_elems = 30  # forces one copy x one window per chunk
        assert torch.allclose(proj.logits(keep), want, atol=1e-6)


def test_gradient_through_the_fast_path_equals_autograd():
    m = make_model(channels=16)
    x = m.embed(torch.as_tensor(docs_of([12])[0])[None])[0]
    proj = DocumentProjection(m, x)
    r = torch.randn(3, x.shape[1], generator=torch.Generator().manual_seed(3))
    s = torch.rand(3, 12, generator=torch.Generator().manual_seed(4))
    s1 = s.clone().requires_grad_(True)
    out = m.forward_embedded(x[None] * s1[:, :, None] + (1 - s1[:, :, None]) * r[:, None])
    (g1,) = torch.autograd.grad((out * torch.arange(4.0)).sum(), s1)
    s2 = s.clone().requires_grad_(True)
    out2 = proj.logits(s2, proj.project(r))
    (g2,) = torch.autograd.grad((out2 * torch.arange(4.0)).sum(), s2)
    assert torch.allclose(out, out2, atol=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5)
    assert g1.abs().max() > 0


def test_greedy_step_values_equal_single_deletions():
    m = make_model()
    for n in (2, 3, 4, 19):
        x = m.embed(torch.as_tensor(docs_of([n], seed=n)[0])[None])[0]
        proj = DocumentProjection(m, x)
        cand = torch.arange(n)
        xs = x[None].repeat(n, 1, 1)
        xs[cand, cand] = 0
        with torch.no_grad():
            want = m.features(xs)
            got = torch.relu(greedy_step_values(proj, proj.z_full, cand))
        assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("objective", ["logit", "softmax"])
def test_greedy_fast_picks_equal_direct(objective):
    m = make_model(channels=32)
    docs = docs_of([3, 8, 21, 40], seed=5)
    for d in docs:
        x = m.embed(torch.as_tensor(d)[None])
        lengths = torch.tensor([len(d)])
        allowed = torch.ones(1, len(d), dtype=torch.bool)
        allowed[0, ::3] = False  # candidate restriction
        tgt = int(m(torch.as_tensor(d)[None]).argmax())
        pd, vd = greedy_batched(m, x, lengths, torch.tensor([tgt]), allowed, 6, objective)
        pf, vf = greedy_fast(m, x[0], tgt, allowed[0], 6, objective)
        assert pd[0].tolist() == pf.tolist()
        ok = ~torch.isnan(vd[0])
        assert torch.allclose(vd[0][ok], vf[ok], atol=1e-4)


def test_explainers_fast_equal_direct():
    m = make_model(channels=32)
    docs = docs_of([5, 17, 33], seed=7)
    for method, params in [("greedy", {"k": 5}), ("greedy", {"k": 4, "objective": "softmax"}),
                           ("occlusion", {}), ("lime", {"num_samples": 200, "seed": 3}),
                           ("shap", {"max_evals": 120, "seed": 3}),
                           ("shap", {"algorithm": "permutation", "max_evals": 100, "seed": 3})]:
        fast = get_explainer(method, m, **params).attribute(docs)
        with direct_path():
            direct = get_explainer(method, m, **params).attribute(docs)
        for f, d in zip(fast, direct):
            if method == "greedy":
                assert f.extra["order"] == d.extra["order"], method
            assert np.allclose(f.relevance, d.relevance, atol=1e-4), (method, params)


def test_rde_neutral_objective_fast_equals_direct():
    from xaipipe.explain.rde import neutral_noise

    m = make_model(channels=16)
    docs = docs_of([6, 11], seed=9)
    from xaipipe.explain.base import pad_embedded

    x, lengths = pad_embedded(m, docs)
    neutral = [3, 5, 8]
    s = torch.rand(x.shape[:2], generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 2])
    with torch.no_grad():
        ref = m.forward_embedded(x, lengths)
    lam = torch.tensor([0.1, 0.2])
    pen = torch.ones_like(s, dtype=torch.bool)
    for loss in ("l1", "l2", "l4"):
        s1 = s.clone().requires_grad_(True)
        g = neutral_noise(m, neutral, lengths, x.shape[1])
        a = rde_objective(m, x, lengths, s1, g, ref, target, lam, pen, loss)
        (ga,) = torch.autograd.grad(a.sum(), s1)
        s2 = s.clone().requires_grad_(True)
        projs = [DocumentProjection(m, x[i, : int(lengths[i])]) for i in range(2)]
        q = projs[0].project(m.embed(torch.tensor([neutral]))[0])
        b = rde_objective_fast(projs, q, lengths, s2, ref, target, lam, pen, loss)
        (gb,) = torch.autograd.grad(b.sum(), s2)
        assert torch.allclose(a, b, atol=1e-5), loss
        valid = torch.arange(x.shape[1])[None] < lengths[:, None]
        assert torch.allclose(ga[valid], gb[valid], atol=1e-5), loss


def test_rde_neutral_maps_fast_close_to_direct():
    m = make_model(channels=16)
    docs = docs_of([6, 11], seed=9)
    params = {"noise": "neutral", "neutral_ids": [3, 5, 8], "steps": 15, "loss": "l2"}
    fast = get_explainer("rde", m, **params).attribute(docs)
    with direct_path():
        direct = get_explainer("rde", m, **params).attribute(docs)
    for f, d in zip(fast, direct):
        assert np.allclose(f.relevance, d.relevance, atol=1e-3)


@pytest.mark.parametrize("mode", ["zero", "neutral", "gaussian"])
def test_deletion_curves_fast_equal_naive(mode):
    m = make_model(channels=32)
    docs = docs_of([2, 9, 25], seed=11)
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(d)) for d in docs]
    classes = np.array([0, 1, 3])
    kw = dict(K=6, mode=mode, neutral_ids=[4, 9], n_draws=3, batch_size=5)
    fast = deletion_curves(m, docs, orders, classes, **kw)
    want = deletion_curves_naive(m, docs, orders, classes, **kw)
    assert np.array_equal(fast["correct"], want["correct"])
    assert np.allclose(fast["prob"], want["prob"], atol=1e-5)


def test_distortion_reference_pass_uses_fast_path_consistently():
    m = make_model(channels=32)
    docs = docs_of([4, 13], seed=12)
    orders = [np.arange(len(d)) for d in docs]
    fast = distortion_curves(m, docs, orders, np.array([0, 1]), K=3, n_draws=2)
    with direct_path():
        direct = distortion_curves(m, docs, orders, np.array([0, 1]), K=3, n_draws=2)
    for key in fast:
        assert np.allclose(fast[key], direct[key], atol=1e-4)


def test_fallback_and_switches():
    m = make_model()
    assert has_fast_path(m) and use_fast_path(m)
    with direct_path():
        assert not use_fast_path(m)
    m.train()
    assert not use_fast_path(m)  # dropout on: the fast head would differ from the model
    assert not has_fast_path(MLP(784, [8], 10))
    with pytest.raises(TypeError, match="no fast"):
        DocumentProjection(MLP(784, [8], 10), torch.zeros(3, 784))


@pytest.mark.parametrize("value, fast", [("1", False), ("0", True), ("", True)])
def test_environment_variable_turns_the_fast_path_off_for_a_run(value, fast):
    import os
    import subprocess
    import sys

    code = ("from conftest import random_text_cnn; from xaipipe.models.fast import use_fast_path; "
            "print(use_fast_path(random_text_cnn(20, 8, 3).eval()))")
    env = {**os.environ, "XAIPIPE_DIRECT_PATH": value}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(__file__))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(fast)


# --- RDE's Gaussian and per-position neutral noise through pool windows ---------------------------------


@pytest.mark.parametrize("length", [1, 2, 3, 7, 30])
@pytest.mark.parametrize("numba", [True, False])
def test_pooled_windows_equal_direct_forward_and_gradient(length, numba):
    """Copies keep ⊙ x + (1 - keep) ⊙ r[o : o + L] at different offsets: value and gradient in keep equal
    the direct forward of the same copies, with the numba loop and with the torch fallback."""
    from xaipipe.models import fast

    m = make_model()
    x = m.embed(torch.as_tensor(docs_of([length], seed=length)[0])[None])[0]
    g = torch.Generator().manual_seed(length)
    n = max(length, m.kernel_size)
    pool = torch.randn(n + 9, x.shape[1], generator=g)
    offsets = torch.tensor([0, 4, 9, 2, 9])
    keep = torch.rand(length, generator=g)
    proj = DocumentProjection(m, x)
    fast._DISABLED_NUMBA[0] = 0 if numba else 1
    try:
        k1 = keep.clone().requires_grad_(True)
        got = proj.logits_windows(k1, proj.project(pool), offsets)
        (g1,) = torch.autograd.grad(got.square().sum(), k1)
    finally:
        fast._DISABLED_NUMBA[0] = 0
    k2 = keep.clone().requires_grad_(True)
    noise = torch.stack([pool[o:o + length] for o in offsets.tolist()])
    want = m.forward_embedded(k2[None, :, None] * x[None] + (1 - k2[None, :, None]) * noise,
                              torch.full((len(offsets),), length))
    (g2,) = torch.autograd.grad(want.square().sum(), k2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kw", [{"loss": "l2"}, {"loss": "l4"}, {"loss": "l1", "adaptive": True, "max_rounds": 2},
                                {"noise": "neutral", "neutral_ids": [3, 5, 8, 11]},
                                {"noise_dist": "standard"}, {"fixed_from": "l4", "fix_value": 1}])
def test_rde_pool_noise_fast_equals_direct(kw):
    """Same pool, same offsets: the fast path's maps equal the direct path's (the same computation)."""
    m = make_model(channels=16)
    docs = docs_of([4, 13, 27], seed=3)
    params = {"steps": 25, "batch": 4, "lr": 0.05, "seed": 5, **kw}
    fast_maps = get_explainer("rde", m, **params).attribute(docs)
    with direct_path():
        direct_maps = get_explainer("rde", m, **params).attribute(docs)
    for f, d in zip(fast_maps, direct_maps):
        np.testing.assert_allclose(f.relevance, d.relevance, atol=2e-3)
    assert np.ptp(np.concatenate([f.relevance for f in fast_maps])) > 0.1


def test_rde_pool_noise_equals_fresh_draws_in_distribution():
    """Draws from a pool (noise_pool > 0, the fast path) and fresh draws every step (noise_pool: 0, full
    forwards) optimise the same expected distortion: over 8 seeds each, the per-word mean relevance of the
    two differs by a Welch t of 0.8 on average, as two sets of fresh draws do (E|t| ~ 0.8 when equal in
    distribution); noise of another distribution (clipped N(0, 1)) gives ~2."""
    m = make_model(channels=16)
    docs = docs_of([12, 20], seed=4)
    params = {"steps": 40, "batch": 8, "lr": 0.05, "loss": "l2"}

    def runs(pool, **kw):
        return np.array([np.concatenate([e.relevance for e in get_explainer("rde", m, seed=s, noise_pool=pool,
                                                                            **params, **kw).attribute(docs)])
                         for s in range(8)])

    def mean_t(x, y):
        se = np.sqrt(x.var(0, ddof=1) / len(x) + y.var(0, ddof=1) / len(y)) + 1e-9
        return float((np.abs(x.mean(0) - y.mean(0)) / se).mean())

    fresh = runs(0.0)
    assert mean_t(runs(1.0), fresh) < 1.3
    assert mean_t(runs(1.0, noise_dist="standard"), fresh) > 1.3  # the test tells distributions apart
