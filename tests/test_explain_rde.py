"""RDE explainer (xaipipe.explain.rde; report sections 3, 6.1-6.4): mask range, a model that depends on
one word, adaptive λ, the combined L4 -> L1 methods, seeding, batching and padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import xaipipe.explain.rde  # noqa: F401  (registers "rde")
from conftest import random_text_cnn
from xaipipe.errors import XaipipeError
from xaipipe.explain import get_explainer
from xaipipe.explain.rde import distortion, neutral_noise, rde_objective
from xaipipe.models import TextCNN

pytestmark = pytest.mark.usefixtures("torch_single_thread")

N_VOCAB, EMB_DIM = 30, 8
SPECIAL = 5          # the only word the one-word model responds to
NEUTRAL = [1, 2, 3]  # vocabulary ids used as neutral words
FAST = {"steps": 40, "batch": 4, "lr": 0.05}


def make_docs(lengths, seed=0, low=6):
    rng = np.random.default_rng(seed)
    return [rng.integers(low, N_VOCAB, n) for n in lengths]


@pytest.fixture(scope="module")
def random_model():
    return random_text_cnn(N_VOCAB, EMB_DIM, 3)


@pytest.fixture(scope="module")
def one_word_model():
    """Φ(X) = (f, -f) with f = relu(max_t x_t[0]); only word SPECIAL has x[0] ≠ 0 (= 3). Gaussian noise
    is clipped to [-1, 1] and the neutral words have x[0] = 0, so keeping SPECIAL is the only way to
    keep Φ(X)."""
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(N_VOCAB, EMB_DIM, generator=g)
    emb[:, 0] = 0.0
    emb[0] = 0.0
    emb[SPECIAL, 0] = 3.0
    model = TextCNN(emb, 2, channels=1, kernel_size=1, hidden=[], dropout=0.5)
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.weight[0, 0, 0] = 1.0
        model.conv.bias.zero_()
        lin = model.classifier[0]
        lin.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        lin.bias.zero_()
    return model.eval()


def one_word_docs():
    """Documents of different lengths with SPECIAL at different positions (first, middle, last)."""
    docs = make_docs([6, 9, 4, 12], seed=3)
    for d, p in zip(docs, [0, 4, 3, 7]):
        d[p] = SPECIAL
    return docs, [0, 4, 3, 7]


def rel(explanations):
    return [e.relevance for e in explanations]


# --- the loss functions (report 3.2.1-3.2.3) ---------------------------------------------------------


def test_distortion_matches_the_report_formulas():
    gen = torch.Generator().manual_seed(0)
    out, ref = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 4, generator=gen)
    tgt = torch.tensor([1, 3])
    got = {loss: distortion(out, ref, tgt, loss) for loss in ("l1", "l2", "l4")}
    for i in range(2):
        h = int(tgt[i])
        for b in range(3):
            phi, phi0 = out[i, b].tolist(), ref[i].tolist()
            l2 = 0.5 * sum((p - q) ** 2 for p, q in zip(phi, phi0))
            l1 = 0.5 * (phi[h] - phi0[h]) ** 2
            l4 = sum(phi[j] - phi0[j] for j in range(4) if j != h) + phi0[h] - phi[h]
            for loss, want in (("l1", l1), ("l2", l2), ("l4", l4)):
                assert float(got[loss][i, b]) == pytest.approx(want, rel=1e-5, abs=1e-6)


# --- range of the output ----------------------------------------------------------------------------


@pytest.mark.parametrize("noise", ["gaussian", "neutral"])
@pytest.mark.parametrize("loss", ["l1", "l2", "l4"])
def test_relevance_range(random_model, loss, noise):
    docs = make_docs([2, 7, 13])
    ex = get_explainer("rde", random_model, loss=loss, noise=noise, neutral_ids=NEUTRAL, lam=0.02,
                       **FAST).attribute(docs)
    lo = -1.0 if loss == "l4" else 0.0
    for d, e in zip(docs, ex):
        assert e.relevance.shape == (len(d),)
        assert np.all(e.relevance >= lo) and np.all(e.relevance <= 1.0)
    values = np.concatenate(rel(ex))
    assert np.ptp(values) > 0.1  # not a constant map
    if loss == "l4":
        assert values.min() < 0  # the rescaled map uses the negative half


def test_l4_rescaling_is_2s_minus_1(one_word_model):
    """L4 relevance = 2s - 1: without a rate term (λ = 0, the report's l4) a word L4 never touches stays at
    init and maps to 2·init - 1."""
    docs, pos = one_word_docs()
    for init in (0.5, 0.75):
        ex = get_explainer("rde", one_word_model, loss="l4", lam=0.0, init=init,
                           **FAST).attribute(docs, [0] * len(docs))
        for d, p, e in zip(docs, pos, ex):
            others = np.delete(e.relevance, p)
            np.testing.assert_allclose(others, 2 * init - 1, atol=1e-6)
            assert e.relevance[p] == pytest.approx(1.0)


def test_l4_signed_rate_pulls_untouched_words_to_neutral(one_word_model):
    """The default preset's l4 rate is λ·mean|2s - 1|: a word that changes nothing ends at the neutral 0 of
    the signed map (not at 2·init - 1), the one word the model reads still at +1."""
    docs, pos = one_word_docs()
    ex = get_explainer("rde", one_word_model, loss="l4", init=0.75, steps=80, batch=4,
                       lr=0.05).attribute(docs, [0] * len(docs))
    for d, p, e in zip(docs, pos, ex):
        np.testing.assert_allclose(np.delete(e.relevance, p), 0.0, atol=0.06)
        assert e.relevance[p] > 0.9


# --- a model that depends on exactly one word ---------------------------------------------------


@pytest.mark.parametrize("noise", ["gaussian", "neutral"])
@pytest.mark.parametrize("loss", ["l1", "l2", "l4"])
def test_single_relevant_word_is_top(one_word_model, loss, noise):
    docs, pos = one_word_docs()
    ex = get_explainer("rde", one_word_model, loss=loss, noise=noise, neutral_ids=NEUTRAL, lam=0.1,
                       steps=80, batch=4).attribute(docs)
    for d, p, e in zip(docs, pos, ex):
        assert e.target == 0
        assert int(np.argmax(e.relevance)) == p
        others = np.delete(e.relevance, p)
        assert e.relevance[p] > 0.9
        if loss != "l4":
            assert others.max() < 0.1  # λ||s||₁ deletes the words the model ignores
        else:
            assert others.max() < e.relevance[p] - 0.5


def test_combined_l1r_keeps_the_relevant_word(one_word_model):
    docs, pos = one_word_docs()
    ex = get_explainer("rde", one_word_model, fixed_from="l4", fix_value=0, lam=0.1, target_low=0.0,
                       target_high=1.0, steps=60, batch=4).attribute(docs)
    for d, p, e in zip(docs, pos, ex):
        assert int(np.argmax(e.relevance)) == p and e.relevance[p] > 0.9


# --- adaptive λ -------------------------------------------------------------------------------------


def test_adaptive_lambda_reaches_range(random_model):
    docs = make_docs([5, 9, 14])
    low, high = 0.2, 0.5
    plain = get_explainer("rde", random_model, loss="l1", lam=5.0, **FAST).attribute(docs)
    assert all(e.relevance.mean() < low for e in plain)  # λ = 5 alone is out of range
    ex = get_explainer("rde", random_model, loss="l1", lam=5.0, adaptive=True, target_low=low,
                       target_high=high, max_rounds=12, **FAST).attribute(docs)
    for d, e in zip(docs, ex):
        assert e.extra["in_range"] is True
        assert low <= e.relevance.mean() <= high
        assert e.extra["mean_relevance"] == pytest.approx(e.relevance.mean(), abs=1e-6)
        assert e.extra["lam"] < 5.0 and 1 < e.extra["rounds"] <= 12
        # the reported λ reproduces the returned map
        again = get_explainer("rde", random_model, loss="l1", lam=e.extra["lam"], **FAST).attribute([d])
        np.testing.assert_allclose(again[0].relevance, e.relevance, atol=1e-5)


def test_adaptive_lambda_reports_the_bound(random_model):
    docs = make_docs([5, 9])
    ex = get_explainer("rde", random_model, loss="l1", lam=5.0, adaptive=True, target_low=0.2,
                       target_high=0.5, max_rounds=1, **FAST).attribute(docs)
    for e in ex:
        assert e.extra == {"lam": 5.0, "rounds": 1, "mean_relevance": pytest.approx(e.relevance.mean()),
                           "in_range": False}


def test_adaptive_lambda_raises_lambda_when_too_dense(random_model):
    docs = make_docs([9, 14])
    ex = get_explainer("rde", random_model, loss="l2", lam=1e-4, init=1.0, adaptive=True, lam_factor=10.0,
                       target_low=0.0, target_high=0.05, max_rounds=12, **FAST).attribute(docs)
    for e in ex:
        assert e.extra["in_range"] and e.relevance.mean() <= 0.05 and e.extra["lam"] > 1e-4


# --- combined L4 -> L1 (RDE-L1 / RDE-L1R) ------------------------------------------------------------


@pytest.mark.parametrize("fix_value", [0, 1])
def test_combined_fixes_all_but_the_top_third(random_model, fix_value):
    docs = make_docs([2, 7, 13])
    l4 = get_explainer("rde", random_model, loss="l4", lam=0.3, init=0.5, **FAST).attribute(docs)
    ex = get_explainer("rde", random_model, fixed_from="l4", fix_value=fix_value, lam=0.1, l4_lam=0.3,
                       target_low=0.0, target_high=1.0, **FAST).attribute(docs)
    for d, e4, e in zip(docs, l4, ex):
        n_free = math.ceil(len(d) / 3)
        top = np.argsort(-e4.relevance, kind="stable")[:n_free]
        fixed = np.setdiff1d(np.arange(len(d)), top)
        assert e.extra["n_free"] == n_free
        assert np.all(e.relevance[fixed] == 0)  # the map explains the candidates only, whatever fix_value
        assert np.all((e.relevance >= 0) & (e.relevance <= 1))
        assert e.extra["in_range"] and e.extra["mean_relevance"] == pytest.approx(e.relevance[top].mean())


# --- seeding, batching, padding -----------------------------------------------------------------------


def test_seeded_reproducibility(random_model):
    docs = make_docs([4, 11])
    a = rel(get_explainer("rde", random_model, loss="l2", lam=0.02, seed=7, **FAST).attribute(docs))
    b = rel(get_explainer("rde", random_model, loss="l2", lam=0.02, seed=7, **FAST).attribute(docs))
    c = rel(get_explainer("rde", random_model, loss="l2", lam=0.02, seed=8, **FAST).attribute(docs))
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
    assert any(not np.allclose(x, z) for x, z in zip(a, c))


@pytest.mark.parametrize("kw", [{"loss": "l2"}, {"loss": "l4"}, {"loss": "l1", "noise": "neutral"},
                                {"fixed_from": "l4", "fix_value": 1}])
def test_batch_equals_one_document_at_a_time(random_model, kw):
    docs = make_docs([2, 7, 13, 4])  # 2 < kernel size 3
    params = {**FAST, "lam": 0.02, "neutral_ids": NEUTRAL, **kw}
    batched = rel(get_explainer("rde", random_model, **params).attribute(docs))
    tiny_groups = rel(get_explainer("rde", random_model, max_tokens=1, **params).attribute(docs))
    for i, d in enumerate(docs):
        alone = get_explainer("rde", random_model, **params).attribute([d])[0].relevance
        np.testing.assert_allclose(batched[i], alone, atol=1e-5)
        np.testing.assert_allclose(tiny_groups[i], alone, atol=1e-5)
    assert np.ptp(np.concatenate(batched)) > 0.1


def test_padding_gets_no_gradient_and_does_not_matter(random_model):
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([2, 6, 4])
    d, n, b, e = 3, 6, 5, EMB_DIM
    x = torch.randn(d, n, e, generator=gen)
    noise = torch.randn(d, b, n, e, generator=gen)
    s = torch.rand(d, n, generator=gen).requires_grad_(True)
    ref = torch.randn(d, 3, generator=gen)
    tgt = torch.tensor([0, 2, 1])
    lam = torch.full((d,), 0.3)
    pen = torch.ones(d, n, dtype=torch.bool)
    pad = torch.arange(n)[None, :] >= lengths[:, None]
    for loss in ("l1", "l2", "l4"):
        out = rde_objective(random_model, x, lengths, s, noise, ref, tgt, lam, pen, loss)
        (grad,) = torch.autograd.grad(out.sum(), s)
        assert torch.all(grad[pad] == 0) and torch.all(grad[~pad] != 0)
        # garbage in the padding of x, noise and s changes nothing
        x2, noise2, s2 = x.clone(), noise.clone(), s.detach().clone()
        x2[pad] = 5.0
        noise2.permute(0, 2, 1, 3)[pad] = -7.0
        s2[pad] = 0.3
        out2 = rde_objective(random_model, x2, lengths, s2, noise2, ref, tgt, lam, pen, loss)
        torch.testing.assert_close(out2, out.detach(), rtol=0, atol=0)
        # and each document's loss equals its unpadded loss
        for i, length in enumerate(lengths.tolist()):
            alone = rde_objective(random_model, x[i:i + 1, :length], lengths[i:i + 1], s[i:i + 1, :length],
                                  noise[i:i + 1, :, :length], ref[i:i + 1], tgt[i:i + 1], lam[i:i + 1],
                                  pen[i:i + 1, :length], loss)
            torch.testing.assert_close(alone[0], out[i], rtol=1e-5, atol=1e-5)


def test_neutral_noise_semantics(random_model):
    """Draw b holds neutral word b's vector at every position inside the document, zeros in the padding."""
    lengths = torch.tensor([2, 4])
    g = neutral_noise(random_model, [4, 9, 1], lengths, 5)
    assert g.shape == (2, 3, 5, EMB_DIM)
    for i, length in enumerate(lengths.tolist()):
        for bi, w in enumerate([4, 9, 1]):
            for t in range(5):
                want = random_model.embedding[w] if t < length else torch.zeros(EMB_DIM)
                torch.testing.assert_close(g[i, bi, t], want, rtol=0, atol=0)


def test_invalid_parameters(random_model):
    for bad in ({"loss": "l3"}, {"noise": "uniform"}, {"noise": "neutral"}, {"lamda": 0.1},
                {"adaptive": True, "lam": 0.0}, {"fixed_from": "l2"}, {"fixed_from": "l4", "fix_value": 0.5},
                {"noise": "neutral", "neutral_ids": [N_VOCAB]}):
        with pytest.raises(XaipipeError):
            get_explainer("rde", random_model, **bad)


# --- presets, noise from the embedding's distribution, λ relative to the distortion --------------------


def test_embedding_noise_has_the_vocabulary_mean_and_covariance(random_model):
    from xaipipe.explain.rde import _GaussianNoise, embedding_noise_stats

    mean, chol = embedding_noise_stats(random_model)
    vecs = random_model.embedding[1:].double()
    torch.testing.assert_close(mean.double(), vecs.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close((chol @ chol.T).double(), torch.cov(vecs.T), rtol=1e-3, atol=1e-5)
    noise = _GaussianNoise(torch.tensor([50]), 50, EMB_DIM, 400, seed=0, device=torch.device("cpu"),
                           dtype=torch.float64, stats=(mean.double(), chol.double()))
    draws = noise.draw().reshape(-1, EMB_DIM)  # 20,000 draws
    torch.testing.assert_close(draws.mean(0), vecs.mean(0), rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(draws.T), torch.cov(vecs.T), rtol=0, atol=0.08)


def test_report_preset_is_the_literal_method(random_model):
    """preset: report = N(0, 1) clipped, λ Σ s, λ in logits (0 for l4), one neutral word per draw; explicit
    parameters give the same maps, and the default preset gives other maps."""
    docs = make_docs([5, 11])
    literal = {"noise_dist": "standard", "penalty": "sum", "lam_relative": False}
    for loss, lam in (("l2", 0.1), ("l4", 0.0)):
        a = rel(get_explainer("rde", random_model, preset="report", loss=loss, **FAST).attribute(docs))
        b = rel(get_explainer("rde", random_model, loss=loss, lam=lam, **literal, **FAST).attribute(docs))
        c = rel(get_explainer("rde", random_model, loss=loss, **FAST).attribute(docs))
        for x, y, z in zip(a, b, c):
            np.testing.assert_array_equal(x, y)
        assert any(not np.allclose(x, z, atol=1e-3) for x, z in zip(a, c))
    a = rel(get_explainer("rde", random_model, preset="report", noise="neutral", neutral_ids=NEUTRAL,
                          **FAST).attribute(docs))
    b = rel(get_explainer("rde", random_model, noise="neutral", neutral_ids=NEUTRAL, neutral_draw="word", lam=0.1,
                          **literal, **FAST).attribute(docs))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def _scaled(model, factor):
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        m.classifier[-1].weight.mul_(factor)
        m.classifier[-1].bias.mul_(factor)
    return m.eval()


@pytest.mark.parametrize("loss", ["l1", "l2", "l4"])
def test_relative_lambda_does_not_depend_on_the_logit_scale(random_model, loss):
    """Multiplying the logits by 10 multiplies every distortion (by 10 for l4, by 100 for l1/l2): with λ
    relative to the distortion of deleting every word the map stays the same (Adam is invariant to a
    common factor of the whole objective); with λ in logit units (the report's) it changes."""
    docs = make_docs([6, 12])
    big = _scaled(random_model, 10.0)
    kw = {"loss": loss, "lam": 0.3, **FAST}
    a = rel(get_explainer("rde", random_model, **kw).attribute(docs))
    b = rel(get_explainer("rde", big, **kw).attribute(docs))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=2e-3)
    c = rel(get_explainer("rde", random_model, lam_relative=False, **kw).attribute(docs))
    d = rel(get_explainer("rde", big, lam_relative=False, **kw).attribute(docs))
    assert any(np.abs(x - y).max() > 0.05 for x, y in zip(c, d))


def test_rate_terms():
    """sum: Σ s over the penalised words (report); mean: their mean s, for l4 their mean |2s - 1| (the
    sparsity of the signed map: 0 for a word at the neutral 0.5)."""
    from xaipipe.explain.rde import rate

    s = torch.tensor([[0.0, 0.5, 1.0, 0.25], [1.0, 1.0, 0.7, 0.1]])
    valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    pen = torch.tensor([[True, True, True, True], [True, False, True, True]])
    torch.testing.assert_close(rate(s, valid, pen, "l2", "sum"), torch.tensor([1.5, 1.8]))
    torch.testing.assert_close(rate(s, valid, pen, "l1", "mean"), torch.tensor([0.5, 0.6]))
    torch.testing.assert_close(rate(s, valid, pen, "l4", "mean"), torch.tensor([2.0 / 3.0, (1.0 + 0.4 + 0.8) / 3]))
    with pytest.raises(XaipipeError, match="penalty"):
        rate(s, valid, pen, "l2", "max")


def test_per_position_neutral_noise_draws_a_word_per_position(random_model):
    from xaipipe.explain.rde import _NeutralNoise

    vecs = random_model.embedding[torch.tensor(NEUTRAL)]
    noise = _NeutralNoise(torch.tensor([4, 7]), 7, vecs, batch=200, seed=3)
    g = noise.draw()
    assert g.shape == (2, 200, 7, EMB_DIM) and torch.all(g[0, :, 4:] == 0)
    # every entry is one of the neutral vectors, and the words at two positions of a draw are independent
    which = (g[1][..., None, :] == vecs[None, None]).all(-1).float().argmax(-1)  # (200, 7)
    assert torch.all((g[1][..., None, :] == vecs[None, None]).all(-1).any(-1))
    assert float((which[:, 0] == which[:, 1]).float().mean()) < 0.6  # ~1/3 by chance, 1 for "one word"
    counts = torch.bincount(which.flatten(), minlength=len(NEUTRAL)).double() / which.numel()
    torch.testing.assert_close(counts, torch.full((3,), 1 / 3, dtype=torch.float64), rtol=0, atol=0.05)


@pytest.mark.parametrize("fix_value", [0, 1])
def test_combined_fix_value_changes_what_the_candidates_are_optimised_against(random_model, fix_value):
    docs = make_docs([9, 15])
    kw = dict(fixed_from="l4", lam=0.3, target_low=0.0, target_high=1.0, **FAST)
    a = rel(get_explainer("rde", random_model, fix_value=fix_value, **kw).attribute(docs))
    b = rel(get_explainer("rde", random_model, fix_value=1 - fix_value, **kw).attribute(docs))
    assert any(not np.allclose(x, y, atol=1e-3) for x, y in zip(a, b))
