"""Evaluation library (xaipipe.evaluate; report section 4 deletion metric, section 6 replacement modes,
distortion curves and misclassified flips): vectorised curves equal the looping references and independent
oracles (token substitution), seeding semantics, batch-size independence, k beyond the document length,
AOPC / bootstrap summaries and planted-keyword scores on hand values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import random_text_cnn
from xaipipe.evaluate import (
    FORMS,
    MODES,
    aopc,
    deletion_curves,
    deletion_curves_naive,
    distortion_curves,
    distortion_curves_naive,
    misclassified_flip_curves,
    order_by_relevance,
    planted_auc,
    rank_correlation,
    summarize,
    topk_correctness,
)
from xaipipe.evaluate.deletion import clipped_normal
from xaipipe.evaluate.distortion import _distortions
from xaipipe.explain.base import predict_docs

pytestmark = pytest.mark.usefixtures("torch_single_thread")

N_VOCAB, EMB_DIM, N_CLASSES = 30, 8, 3
LENGTHS = [1, 2, 5, 9, 14]
NEUTRAL = [3, 5, 7]
K = 16  # > longest document: every document is deleted completely at the end


@pytest.fixture(scope="module")
def model():
    return random_text_cnn(N_VOCAB, EMB_DIM, N_CLASSES, hidden=(6,))


@pytest.fixture(scope="module")
def docs():
    rng = np.random.default_rng(0)
    return [rng.integers(1, N_VOCAB, n) for n in LENGTHS]


@pytest.fixture(scope="module")
def orders(docs):
    rng = np.random.default_rng(1)
    return [order_by_relevance(rng.standard_normal(len(d))) for d in docs]


@pytest.fixture(scope="module")
def pred(model, docs):
    return predict_docs(model, docs)


def kw(mode):
    return {"mode": mode, "n_draws": 3, "neutral_ids": NEUTRAL, "seed": 7}


@torch.no_grad()
def substituted_predictions(model, doc, order, k, token):
    """Independent oracle: delete by writing ``token`` into the token ids (id 0 = zero vector)."""
    d = doc.copy()
    d[order[:k]] = token
    logits = model(torch.as_tensor(d)[None])[0].double()
    return int(logits.argmax()), torch.softmax(logits, 0).numpy()


# --- orders -----------------------------------------------------------------------------------------


def test_order_by_relevance_descending_ties_by_position():
    rel = np.array([0.5, 2.0, 0.5, -1.0, 2.0])
    assert order_by_relevance(rel).tolist() == [1, 4, 0, 2, 3]
    assert order_by_relevance(np.array([1, 1, 1])).tolist() == [0, 1, 2]


def test_order_by_relevance_random_is_seeded_permutation():
    rel = np.arange(20.0)
    a = order_by_relevance(rel, np.random.default_rng(3))
    assert sorted(a.tolist()) == list(range(20))
    assert a.tolist() != order_by_relevance(rel).tolist()
    assert a.tolist() == order_by_relevance(rel, np.random.default_rng(3)).tolist()
    assert a.tolist() != order_by_relevance(rel, np.random.default_rng(4)).tolist()


# --- deletion curves --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_k0_is_accuracy(model, docs, orders, pred, mode):
    res = deletion_curves(model, docs, orders, pred, K, **kw(mode))
    assert res["correct"].shape == res["prob"].shape == (len(docs), K + 1)
    assert res["correct"].dtype == res["prob"].dtype == np.float64
    assert np.array_equal(res["correct"][:, 0], np.ones(len(docs)))
    wrong = pred.copy()
    wrong[::2] = (wrong[::2] + 1) % N_CLASSES
    res = deletion_curves(model, docs, orders, wrong, K, **kw(mode))
    assert np.array_equal(res["correct"][:, 0], (wrong == pred).astype(float))
    for i, d in enumerate(docs):
        _, p = substituted_predictions(model, d, orders[i], 0, 0)
        assert res["prob"][i, 0] == pytest.approx(p[wrong[i]], abs=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_vectorised_equals_naive(model, docs, orders, pred, mode):
    classes = pred.copy()
    classes[1] = (classes[1] + 1) % N_CLASSES  # one document that starts wrong
    fast = deletion_curves(model, docs, orders, classes, K, batch_size=11, **kw(mode))
    slow = deletion_curves_naive(model, docs, orders, classes, K, **kw(mode))
    assert np.array_equal(fast["correct"], slow["correct"])
    np.testing.assert_allclose(fast["prob"], slow["prob"], atol=1e-6)
    if mode != "zero":  # the batched modes really average over draws
        assert not np.all(np.isin(fast["correct"], [0.0, 1.0]))


@pytest.mark.parametrize("mode", MODES)
def test_independent_of_batch_size(model, docs, orders, pred, mode):
    ref = deletion_curves(model, docs, orders, pred, K, batch_size=1000, **kw(mode))
    for bs in (1, 4, 37):
        res = deletion_curves(model, docs, orders, pred, K, batch_size=bs, **kw(mode))
        assert np.array_equal(res["correct"], ref["correct"])
        np.testing.assert_allclose(res["prob"], ref["prob"], atol=1e-6)


@pytest.mark.parametrize("mode, token", [("zero", 0), ("neutral", NEUTRAL[1])])
def test_deletion_equals_token_substitution(model, docs, orders, pred, mode, token):
    """Zero vector = the padding id's embedding; one neutral word = writing that word into the text."""
    res = deletion_curves(model, docs, orders, pred, K, mode=mode, neutral_ids=[token])
    for i, d in enumerate(docs):
        for k in range(K + 1):
            c, p = substituted_predictions(model, d, orders[i], k, token)
            assert res["correct"][i, k] == float(c == pred[i])
            assert res["prob"][i, k] == pytest.approx(p[pred[i]], abs=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_k_beyond_length_repeats_full_deletion(model, docs, orders, pred, mode):
    res = deletion_curves(model, docs, orders, pred, K, **kw(mode))
    for i, d in enumerate(docs):
        for key in ("correct", "prob"):
            assert np.all(res[key][i, len(d):] == res[key][i, len(d)])
    # the one-word document: every k >= 1 is "all words deleted"
    short = deletion_curves(model, [docs[0]], [orders[0]], pred[:1], 3, mode="zero")
    c, p = substituted_predictions(model, docs[0], orders[0], 1, 0)
    assert short["correct"][0].tolist() == [1.0] + [float(c == pred[0])] * 3


def test_gaussian_seeding(model, docs, orders, pred):
    a = deletion_curves(model, docs, orders, pred, 8, mode="gaussian", n_draws=4, seed=1)
    b = deletion_curves(model, docs, orders, pred, 3, mode="gaussian", n_draws=4, seed=1)
    np.testing.assert_array_equal(a["correct"][:, :4], b["correct"])  # rank-major noise: K-prefix stable
    np.testing.assert_allclose(a["prob"][:, :4], b["prob"], atol=1e-6)
    c = deletion_curves(model, docs, orders, pred, 8, mode="gaussian", n_draws=4, seed=2)
    assert not np.allclose(a["prob"], c["prob"])
    # a document's noise depends on (seed, its index), not on the other documents evaluated with it
    docs2, orders2 = list(docs), list(orders)
    docs2[0], orders2[0] = np.arange(1, 21), np.arange(20)  # another (longer) document at index 0
    other = deletion_curves(model, docs2, orders2, pred, 8, mode="gaussian", n_draws=4, seed=1)
    np.testing.assert_allclose(other["prob"][1:], a["prob"][1:], atol=1e-6)
    g = clipped_normal(0, 0, (50, 4, 8))
    assert g.dtype == np.float32 and g.min() == -1.0 and g.max() == 1.0
    assert np.array_equal(g, clipped_normal(0, 0, (50, 4, 8)))
    assert not np.array_equal(g, clipped_normal(0, 1, (50, 4, 8)))


def test_model_mode_restored_and_dropout_off(model, docs, orders, pred):
    ref = deletion_curves(model, docs, orders, pred, 4, mode="gaussian", n_draws=2)
    model.train()
    try:
        res = deletion_curves(model, docs, orders, pred, 4, mode="gaussian", n_draws=2)
        assert model.training
    finally:
        model.eval()
    np.testing.assert_allclose(res["prob"], ref["prob"], atol=1e-6)


def test_misclassified_flip_curves(model, docs, orders, pred):
    res = misclassified_flip_curves(model, docs, orders, pred, K, **kw("neutral"))
    base = deletion_curves(model, docs, orders, pred, K, **kw("neutral"))
    assert np.array_equal(res["changed"], 1.0 - base["correct"])
    assert np.all(res["changed"][:, 0] == 0.0)
    assert res["changed"].max() > 0.0


def test_bad_inputs(model, docs, orders, pred):
    with pytest.raises(ValueError, match="distinct"):
        deletion_curves(model, docs[:1], [np.array([0, 0])], pred[:1], 1)
    with pytest.raises(ValueError, match="orders"):
        deletion_curves(model, docs, orders[:2], pred, 1)
    with pytest.raises(ValueError, match="neutral_ids"):
        deletion_curves(model, docs, orders, pred, 1, mode="neutral")
    with pytest.raises(ValueError, match="mode"):
        deletion_curves(model, docs, orders, pred, 1, mode="blank")
    with pytest.raises(ValueError, match="need min"):
        deletion_curves(model, docs[3:4], [orders[3][:2]], pred[3:4], 5)


# --- distortion curves ------------------------------------------------------------------------------


def test_distortion_forms_on_hand_values():
    fy = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    fx = torch.zeros(1, 3, dtype=torch.float64)
    d = _distortions(fy, fx, torch.tensor([2]))
    assert float(d["l1"][0]) == 4.5  # 0.5 * 3^2
    assert float(d["l2"][0]) == 7.0  # 0.5 * (1 + 4 + 9)
    assert float(d["l4"][0]) == 0.0  # (1 + 2) + 0 - 3


def test_distortion_vectorised_equals_naive(model, docs, orders, pred):
    fast = distortion_curves(model, docs, orders, pred, K, n_draws=3, seed=5, batch_size=13)
    slow = distortion_curves_naive(model, docs, orders, pred, K, n_draws=3, seed=5)
    for f in FORMS:
        assert fast[f].shape == (len(docs), K + 1)
        np.testing.assert_allclose(fast[f], slow[f], rtol=1e-4, atol=1e-7)
    assert np.all(fast["l2"] >= fast["l1"]) and np.all(fast["l1"] >= 0)
    assert np.all(fast["l2"][:, 0] > 0)  # all noise: the logits move
    for bs in (1, 1000):
        other = distortion_curves(model, docs, orders, pred, K, n_draws=3, seed=5, batch_size=bs)
        for f in FORMS:
            np.testing.assert_allclose(other[f], fast[f], rtol=1e-4, atol=1e-7)


def test_distortion_keeping_all_words_is_exactly_zero(model, docs, orders, pred):
    fast = distortion_curves(model, docs, orders, pred, K, n_draws=2)
    slow = distortion_curves_naive(model, docs, orders, pred, K, n_draws=2)
    for i, d in enumerate(docs):
        for f in FORMS:
            assert np.all(fast[f][i, len(d):] == 0.0)
            assert np.all(slow[f][i, len(d):] == 0.0)
            assert fast[f][i, len(d) - 1] != 0.0  # one word still noise


# --- scores -----------------------------------------------------------------------------------------


def test_aopc_linear_curve():
    k = np.arange(11)
    curves = np.stack([1.0 - k / 10, np.full(11, 0.3), 0.5 + k / 20])
    np.testing.assert_allclose(aopc(curves), [0.5, 0.0, -0.25])
    assert aopc(1.0 - k / 10).tolist() == pytest.approx([0.5])


def test_summarize_hand_values_and_bootstrap():
    k = np.arange(7)
    rng = np.random.default_rng(0)
    base = 1.0 - k / 6
    vals = base[None, :] + rng.normal(0, 0.1, (40, 1))  # per-document offset
    s = summarize(vals, ks=(1, 5, 10), n_boot=500, seed=0)
    json.dumps(s)
    assert s["n_docs"] == 40 and s["K"] == 6
    np.testing.assert_allclose(s["mean_curve"], vals.mean(0))
    assert set(s["at_k"]) == {"1", "5"}  # 10 > K is left out
    assert s["aopc"] == pytest.approx(0.5)  # offsets cancel in curve[0] - curve[k]
    assert s["aopc_lo"] == pytest.approx(0.5) and s["aopc_hi"] == pytest.approx(0.5)
    for j in range(7):
        assert s["curve_lo"][j] <= s["mean_curve"][j] <= s["curve_hi"][j]
    assert s["curve_lo"][0] < s["curve_hi"][0]
    noisy = summarize(vals * rng.uniform(0.5, 1.5, (40, 1)), n_boot=500)  # AOPC varies by document
    assert noisy["aopc_lo"] < noisy["aopc"] < noisy["aopc_hi"]
    at1 = s["at_k"]["1"]
    assert at1["lo"] < at1["mean"] < at1["hi"]
    assert summarize(vals, n_boot=500, seed=0) == summarize(vals, n_boot=500, seed=0)
    big = base[None, :] + rng.normal(0, 0.1, (640, 1))
    sb = summarize(big, n_boot=500, seed=0)
    w_small = at1["hi"] - at1["lo"]
    w_big = sb["at_k"]["1"]["hi"] - sb["at_k"]["1"]["lo"]
    assert w_big < 0.5 * w_small  # ~ 1/sqrt(16) = 0.25
    const = summarize(np.ones((5, 3)), ks=(1,), n_boot=50)
    assert const["at_k"]["1"] == {"mean": 1.0, "lo": 1.0, "hi": 1.0}


def test_topk_correctness():
    rel = np.array([3.0, 1.0, 2.0, 0.0, 2.0])
    planted = np.array([True, False, False, False, True])
    assert topk_correctness(rel, planted, 2) == (0.5, 0.5)  # top-2 = positions 0, 2 (tie 2/4: position)
    p, r = topk_correctness(rel, planted, 3)
    assert (p, r) == (pytest.approx(2 / 3), 1.0)
    assert topk_correctness(rel, planted, 50) == (0.4, 1.0)  # cut to the document
    p, r = topk_correctness(rel, np.zeros(5, bool), 2)
    assert p == 0.0 and np.isnan(r)


def test_rank_correlation():
    planted = np.array([False, False, True, True])
    assert rank_correlation(np.array([1.0, 2.0, 3.0, 4.0]), planted) == pytest.approx(4 / (2 * np.sqrt(5)))
    assert rank_correlation(np.array([4.0, 3.0, 2.0, 1.0]), planted) == pytest.approx(-4 / (2 * np.sqrt(5)))
    assert rank_correlation(planted.astype(float), planted) == pytest.approx(1.0)
    assert rank_correlation(np.ones(4), planted) == 0.0
    assert rank_correlation(np.arange(4.0), np.zeros(4, bool)) == 0.0


def test_planted_auc():
    rel = np.array([0.9, 0.1, 0.5, 0.5])
    planted = np.array([True, False, True, False])
    assert planted_auc(rel, planted) == pytest.approx(3.5 / 4)  # one tie counts 1/2
    assert planted_auc(-rel, planted) == pytest.approx(0.5 / 4)
    assert planted_auc(np.ones(4), planted) == 0.5
    assert np.isnan(planted_auc(rel, np.ones(4, bool)))


def test_methods_keep_one_colour_across_figures(tmp_path):
    """Issue 'report': a variant's line has the same colour in every figure of a run, whichever subset of
    variants a figure (dataset) shows; variants of one family get distinct shades."""
    from xaipipe.evaluate.plots import method_colours, plot_curves

    palette = {"rde_l1": "rde", "rde_l2": "rde", "greedy_gn": "greedy", "lrp_zplus": "lrp_zplus",
               "lime": "lime", "shap": "shap", "random": "random"}
    ks = np.arange(4)

    def curves_for(names):
        return {v: pd.DataFrame({"curve": "accuracy", "mode": "zero", "k": ks, "mean": 1 - ks / (4 + i),
                                 "lo": 0.0, "hi": 1.0}) for i, v in enumerate(names)}

    full = plot_curves(curves_for(palette), palette, "accuracy", "zero", tmp_path / "a.png", "a", palette)
    subset = {v: palette[v] for v in ("rde_l2", "lime", "random")}
    part = plot_curves(curves_for(subset), subset, "accuracy", "zero", tmp_path / "b.png", "b", palette)
    assert set(full) == set(palette) and set(part) == set(subset)
    assert all(part[v] == full[v] for v in subset)
    assert len(set(full.values())) == len(full)  # no two variants share a colour
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0
    # without the run's palette the shade would depend on the figure's subset
    assert method_colours(subset)["rde_l2"] != full["rde_l2"]
    assert plot_curves(curves_for(subset), subset, "distortion", "zero", tmp_path / "c.png", "c") == {}
    assert not (tmp_path / "c.png").exists()


# --- correctness against planted ground truth, with bootstrap intervals -------------------------------


def _planted_docs(n=40, length=30, seed=0):
    rng = np.random.default_rng(seed)
    planted = [np.zeros(length, bool) for _ in range(n)]
    for p in planted:
        p[rng.choice(length, 3, replace=False)] = True
    docs = pd.DataFrame({"id": [f"d{i}" for i in range(n)], "set": ["correct"] * (n - 2) + ["misclassified"] * 2,
                         "planted": [p.tolist() for p in planted]})
    return docs, planted, rng


def test_correctness_of_a_perfect_a_reversed_and_the_random_order():
    from xaipipe.evaluate.stage import correctness

    docs, planted, rng = _planted_docs()
    perfect = pd.DataFrame({"relevance": [p.astype(float) + 0.01 * rng.random(len(p)) for p in planted]})
    reverse = pd.DataFrame({"relevance": [-r for r in perfect["relevance"]]})
    orders = [rng.permutation(len(p)) for p in planted]
    good = correctness(docs, perfect, orders, ks=(1, 5), n_boot=200)
    bad = correctness(docs, reverse, orders, ks=(1, 5), n_boot=200)
    rand = correctness(docs, None, orders, ks=(1, 5), n_boot=200)
    assert good["auc"]["mean"] == 1.0 and good["hit@1"]["mean"] == 1.0
    assert good["precision@5"]["mean"] == pytest.approx(0.6)
    assert bad["auc"]["mean"] == 0.0 and bad["hit@1"]["mean"] == 0.0
    assert good["auc"]["n_docs"] == 38  # the correctly classified documents only
    assert 0.35 < rand["auc"]["mean"] < 0.65 and rand["auc"]["lo"] < 0.5 < rand["auc"]["hi"]
    assert rand["auc"]["lo"] < rand["auc"]["mean"] < rand["auc"]["hi"]


def test_bootstrap_mean_interval_covers_and_skips_nan():
    from xaipipe.evaluate.scores import bootstrap_mean

    v = np.r_[np.random.default_rng(0).normal(0.7, 0.1, 200), np.nan]
    b = bootstrap_mean(v, n_boot=500, seed=1)
    assert b["n_docs"] == 200 and b["lo"] < 0.7 < b["hi"] and b["hi"] - b["lo"] < 0.05
    assert bootstrap_mean([np.nan])["mean"] is None


def test_correctness_table_sorts_by_auc_and_keeps_intervals():
    from xaipipe.evaluate.plots import correctness_table

    def c(a):
        return {"correctness": {"auc": {"mean": a, "lo": a - 0.1, "hi": a + 0.1, "n_docs": 10},
                                "hit@1": {"mean": a, "lo": 0.0, "hi": 1.0, "n_docs": 10}}}

    t = correctness_table({"random": c(0.5), "lime": c(0.97), "rde_l2": c(0.91)},
                          {"lime": "lime", "rde_l2": "rde", "random": "random"})
    assert list(t["variant"]) == ["lime", "rde_l2", "random"] and list(t["rank"]) == [1, 2, 3]
    assert t.loc[0, "auc_ci"] == "[0.870, 1.070]" and t.loc[2, "n_docs"] == 10
    assert correctness_table({"x": {"curves": {}}}, {}).empty
