"""Greedy deletion explainer (xaipipe.explain.greedy; report section 5 Algorithm 1, sections 6.5 and 9):
batched picks equal the looping reference, candidate restriction, relevance encoding, short documents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xaipipe.explain.greedy  # noqa: F401  (registers "greedy")
import xaipipe.explain.rde  # noqa: F401  (registers "rde", used as a candidate method)
from conftest import random_text_cnn
from xaipipe.errors import XaipipeError
from xaipipe.explain import METHODS, Explainer, get_explainer, register
from xaipipe.explain.greedy import greedy_naive
from xaipipe.models import TextCNN

pytestmark = pytest.mark.usefixtures("torch_single_thread")

N_VOCAB, EMB_DIM, N_CLASSES = 30, 8, 3
LENGTHS = [1, 2, 5, 9, 14]

if "_test_vocab_id_relevance" not in METHODS:
    @register("_test_vocab_id_relevance")
    class _VocabIdRelevance(Explainer):
        """Relevance = the word's vocabulary id: known candidates for the restriction test."""

        def _attribute_batch(self, docs, target):
            return [d.astype(np.float64) for d in docs]


@pytest.fixture(scope="module")
def model():
    return random_text_cnn(N_VOCAB, EMB_DIM, N_CLASSES, hidden=(6,))


@pytest.fixture(scope="module")
def docs():
    rng = np.random.default_rng(0)
    return [rng.integers(1, N_VOCAB, n) for n in LENGTHS]


@torch.no_grad()
def single_deletion_values(model, doc, target, objective):
    """Objective after deleting each word alone, one unpadded forward per word (float64 softmax)."""
    x = model.embed(torch.as_tensor(doc)[None])
    vals = []
    for j in range(len(doc)):
        xd = x.clone()
        xd[0, j] = 0.0
        logits = model.forward_embedded(xd)[0].double()
        vals.append(float(logits[target]) if objective == "logit" else float(torch.softmax(logits, 0)[target]))
    return np.array(vals)


@pytest.mark.parametrize("objective", ["logit", "softmax"])
def test_first_pick_is_the_best_single_deletion(model, docs, objective):
    ex = get_explainer("greedy", model, k=1, objective=objective).attribute(docs)
    n_unique = 0
    for d, e in zip(docs, ex):
        vals = single_deletion_values(model, d, e.target, objective)
        first = e.extra["order"][0]
        assert vals[first] <= vals.min() + 1e-6 * max(1.0, abs(vals.min()))
        assert first == int(np.argmin(vals)) or vals[first] == pytest.approx(vals.min(), rel=1e-6, abs=1e-6)
        n_unique += int(np.sum(vals <= vals.min() + 1e-6) == 1)
        assert e.relevance[first] == 1 and np.count_nonzero(e.relevance) == 1
    assert n_unique >= 3  # the test model is not degenerate (distinct minima)


@pytest.mark.parametrize("objective", ["logit", "softmax"])
@pytest.mark.parametrize("max_batch", [3, 1000])
def test_batched_equals_naive(model, docs, objective, max_batch):
    k = 6
    targets = [0, 1, 2, 1, 0]  # also non-predicted classes
    ex = get_explainer("greedy", model, k=k, objective=objective, max_batch=max_batch,
                       batch_docs=2).attribute(docs, targets)
    for d, t, e in zip(docs, targets, ex):
        want = greedy_naive(model, d, t, k, objective=objective)
        assert e.extra["order"] == want
        assert len(want) == min(k, len(d))
        # relevance encoding: r-th pick gets k - r, every other word 0
        expected = np.zeros(len(d))
        expected[want] = k - np.arange(len(want))
        np.testing.assert_array_equal(e.relevance, expected)
        # values = objective after each cumulative deletion
        with torch.no_grad():
            x = model.embed(torch.as_tensor(d)[None])
            for r, j in enumerate(want):
                x[0, j] = 0.0
                logits = model.forward_embedded(x)[0]
                if objective == "logit":
                    assert e.extra["values"][r] == pytest.approx(float(logits[t]), abs=1e-5)


def test_ties_go_to_the_first_position(model):
    """Algorithm 1 keeps the first minimum (strict <): with a kernel of width 1 a document of one repeated
    word gives identical values for every deletion, so the picks are 0, 1, 2, ..."""
    g = torch.Generator().manual_seed(2)
    flat = TextCNN(torch.randn(N_VOCAB, EMB_DIM, generator=g), N_CLASSES, channels=4, kernel_size=1,
                   hidden=[], dropout=0.5).eval()
    docs = [np.full(6, 7), np.array([3, 9, 9, 9, 4])]
    ex = get_explainer("greedy", flat, k=3, max_batch=4).attribute(docs)
    assert ex[0].extra["order"] == [0, 1, 2] == greedy_naive(flat, docs[0], ex[0].target, 3)
    assert ex[1].extra["order"] == greedy_naive(flat, docs[1], ex[1].target, 3)


def test_picks_are_not_in_document_order(model, docs):
    """Guards against a trivially 'sorted' implementation passing the comparison."""
    orders = [e.extra["order"] for e in get_explainer("greedy", model, k=5).attribute(docs)]
    assert any(o != sorted(o) for o in orders)


def test_candidate_restriction(model, docs):
    n_cand, k = 4, 6
    ex = get_explainer("greedy", model, k=k, candidate_method="_test_vocab_id_relevance",
                       n_candidates=n_cand).attribute(docs)
    for d, e in zip(docs, ex):
        cands = sorted(np.argsort(-d.astype(np.float64), kind="stable")[:n_cand].tolist())
        assert e.extra["candidates"] == cands
        assert set(e.extra["order"]) <= set(cands)
        assert len(e.extra["order"]) == min(n_cand, len(d))  # k > n_candidates: every candidate picked
        assert e.extra["order"] == greedy_naive(model, d, e.target, k, candidates=cands)
        assert np.all(e.relevance[np.setdiff1d(np.arange(len(d)), cands)] == 0)
    full = get_explainer("greedy", model, k=k).attribute(docs)
    assert any(set(f.extra["order"]) - set(e.extra["candidates"]) for f, e in zip(full, ex))


def test_k_larger_than_document(model, docs):
    short = [d for d in docs if len(d) <= 5]
    ex = get_explainer("greedy", model, k=10).attribute(short)
    for d, e in zip(short, ex):
        assert sorted(e.extra["order"]) == list(range(len(d)))
        assert sorted(e.relevance.tolist(), reverse=True) == list(range(10, 10 - len(d), -1))
        assert e.extra["order"] == greedy_naive(model, d, e.target, 10)


def test_greedy_with_rde_candidates(model, docs):
    """GL2: candidates from an RDE (l2) map built on the same model."""
    params = {"loss": "l2", "steps": 5, "batch": 2}
    ex = get_explainer("greedy", model, k=3, candidate_method="rde", n_candidates=4, seed=3,
                       candidate_params=params).attribute(docs)
    rde = get_explainer("rde", model, seed=3, **params).attribute(docs)  # greedy hands its seed on
    for d, e, r in zip(docs, ex, rde):
        assert e.extra["candidates"] == sorted(np.argsort(-r.relevance, kind="stable")[:4].tolist())
        assert set(e.extra["order"]) <= set(e.extra["candidates"])


def test_invalid_parameters(model):
    for bad in ({"candidates": "top"}, {"objective": "prob"}, {"k": 0}, {"candidate_method": "nope"},
                {"topk": 3}, {"candidates": "some"}, {"candidate_method": "rde", "candidate_params": {"loss": "l3"}}):
        with pytest.raises(XaipipeError):
            get_explainer("greedy", model, **bad)
