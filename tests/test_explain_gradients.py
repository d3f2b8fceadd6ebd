"""Gradient and perturbation explainers (xaipipe.explain.gradients) against hand computations.

Every method x {batch of documents of different lengths, one document at a time}; sensitivity and
gradient x input against autograd on the unpadded document; occlusion against a naive leave-one-out
loop; integrated gradients against its completeness axiom.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaipipe.errors import XaipipeError
from xaipipe.explain.base import METHODS, get_explainer, pad_embedded
from xaipipe.explain.gradients import EmbeddedExplainer
from xaipipe.models import TextCNN

pytestmark = pytest.mark.usefixtures("torch_single_thread")

METHOD_NAMES = ["sensitivity", "gradient_x_input", "integrated_gradients", "occlusion"]
# 1 and 2 are shorter than the kernel (the model pads them to 3 itself)
LENGTHS = [1, 2, 4, 7, 30]
N_VOCAB, EMB_DIM, N_CLASSES, KERNEL = 12, 4, 3, 3


@pytest.fixture
def model() -> TextCNN:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(N_VOCAB, EMB_DIM, generator=g)
    emb[0] = 0.0
    torch.manual_seed(0)
    m = TextCNN(emb, n_classes=N_CLASSES, channels=5, kernel_size=KERNEL, hidden=[6], dropout=0.5)
    with torch.no_grad():  # non-zero conv bias: padding windows would then win the max-pool if unmasked
        m.conv.bias.uniform_(-0.5, 0.5)
    return m.eval()


@pytest.fixture
def docs() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(1, N_VOCAB, n) for n in LENGTHS]


TARGETS = [0, 2, 1, 1, 0]  # not always the predicted class


def logit(model: TextCNN, x: torch.Tensor, target: int) -> float:
    """Target logit of ONE unpadded embedded document ``(L, E)``."""
    with torch.no_grad():
        return float(model.forward_embedded(x[None])[0, target])


def hand_gradient(model: TextCNN, doc: np.ndarray, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = model.embed(torch.as_tensor(doc)[None]).detach().requires_grad_(True)
    model.forward_embedded(x)[0, target].backward()
    return x.grad[0], x.detach()[0]


def test_methods_are_registered():
    assert set(METHOD_NAMES) <= set(METHODS)
    assert all(issubclass(METHODS[m], EmbeddedExplainer) for m in METHOD_NAMES)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_one_finite_value_per_word_and_batch_equals_single(model, docs, method):
    ex = get_explainer(method, model)
    batch = ex.attribute(docs, TARGETS)
    assert [len(e.relevance) for e in batch] == LENGTHS
    assert [e.target for e in batch] == TARGETS
    for e in batch:
        assert np.all(np.isfinite(e.relevance))
    for d, t, e in zip(docs, TARGETS, batch):
        (single,) = ex.attribute([d], [t])
        np.testing.assert_allclose(e.relevance, single.relevance, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_default_target_is_the_predicted_class(model, docs, method):
    ex = get_explainer(method, model)
    x, lengths = pad_embedded(model, docs)
    with torch.no_grad():
        pred = model.forward_embedded(x, lengths).argmax(1).tolist()
    default = ex.attribute(docs)
    assert [e.target for e in default] == pred
    explicit = ex.attribute(docs, pred)
    for a, b in zip(default, explicit):
        np.testing.assert_allclose(a.relevance, b.relevance, rtol=1e-6, atol=1e-8)


def test_sensitivity_and_gradient_x_input_match_autograd(model, docs):
    sens = get_explainer("sensitivity", model).attribute(docs, TARGETS)
    gxi = get_explainer("gradient_x_input", model).attribute(docs, TARGETS)
    for d, t, s, g in zip(docs, TARGETS, sens, gxi):
        grad, x = hand_gradient(model, d, t)
        np.testing.assert_allclose(s.relevance, (grad ** 2).sum(1).numpy(), rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(g.relevance, (grad * x).sum(1).numpy(), rtol=1e-5, atol=1e-7)


def test_occlusion_matches_naive_leave_one_out(model, docs):
    occ = get_explainer("occlusion", model, perturbations_per_eval=3).attribute(docs, TARGETS)
    for d, t, o in zip(docs, TARGETS, occ):
        x = model.embed(torch.as_tensor(d)[None])[0]
        full = logit(model, x, t)
        naive = []
        for i in range(len(d)):
            xi = x.clone()
            xi[i] = 0.0
            naive.append(full - logit(model, xi, t))
        np.testing.assert_allclose(o.relevance, naive, rtol=1e-5, atol=1e-6)


def test_occlusion_does_not_depend_on_perturbations_per_eval(model, docs):
    a = get_explainer("occlusion", model, perturbations_per_eval=1).attribute(docs, TARGETS)
    b = get_explainer("occlusion", model).attribute(docs, TARGETS)
    for ea, eb in zip(a, b):
        np.testing.assert_allclose(ea.relevance, eb.relevance, rtol=1e-5, atol=1e-6)


def test_integrated_gradients_completeness(model, docs):
    ex = get_explainer("integrated_gradients", model, n_steps=300)
    for d, t, e in zip(docs, TARGETS, ex.attribute(docs, TARGETS)):
        x = model.embed(torch.as_tensor(d)[None])[0]
        gap = logit(model, x, t) - logit(model, torch.zeros_like(x), t)
        # Captum's delta is exactly this completeness error ...
        assert e.extra["convergence_delta"] == pytest.approx(e.relevance.sum() - gap, abs=1e-5)
        # ... and it is small with enough steps (piecewise-linear model: kinks limit the quadrature)
        assert abs(e.relevance.sum() - gap) < 0.01 * abs(gap) + 2e-3


def test_integrated_gradients_internal_batching_and_steps(model, docs):
    ref = get_explainer("integrated_gradients", model, n_steps=20).attribute(docs, TARGETS)
    chunked = get_explainer("integrated_gradients", model, n_steps=20, internal_batch_size=7).attribute(docs, TARGETS)
    for a, b in zip(ref, chunked):
        np.testing.assert_allclose(a.relevance, b.relevance, rtol=1e-4, atol=1e-6)
    # one step = gradient at x/2 times x (Gauss-Legendre midpoint): differs from gradient x input
    one = get_explainer("integrated_gradients", model, n_steps=1).attribute(docs[-1:], TARGETS[-1:])[0]
    grad_half = model.embed(torch.as_tensor(docs[-1])[None]).detach() * 0.5
    grad_half.requires_grad_(True)
    model.forward_embedded(grad_half)[0, TARGETS[-1]].backward()
    expected = (grad_half.grad[0] * 2 * grad_half.detach()[0]).sum(1).numpy()
    np.testing.assert_allclose(one.relevance, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients", "occlusion"])
def test_zero_vector_word_gets_zero_at_its_position(model, method):
    """Word order: a deleted word (id 0, the zero vector) gets zero relevance where it stands (occlusion:
    up to the rounding of a differently sized batch)."""
    doc = np.array([3, 5, 0, 7, 1, 9, 4, 0, 2, 6])
    (e,) = get_explainer(method, model).attribute([doc], [1])
    tol = 1e-6 if method == "occlusion" else 0.0
    assert abs(e.relevance[2]) <= tol and abs(e.relevance[7]) <= tol
    assert np.abs(np.delete(e.relevance, [2, 7])).max() > 1e-3


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_padding_is_dropped_and_gets_no_relevance(model, docs, method):
    ex = get_explainer(method, model)
    x, lengths = pad_embedded(model, docs)
    rel = ex.attribute_embedded(x, lengths, torch.as_tensor(TARGETS))
    rel = rel[0] if isinstance(rel, tuple) else rel
    assert rel.shape == (len(docs), max(LENGTHS))
    if method != "sensitivity":  # the gradient itself may be non-zero at padding inside a short doc's window
        for b, n in enumerate(LENGTHS):
            assert torch.all(rel[b, n:] == 0)


def test_bad_parameters_are_errors(model, docs):
    with pytest.raises(XaipipeError, match="unknown parameter"):
        get_explainer("sensitivity", model, n_steps=3)
    with pytest.raises(XaipipeError, match="n_steps"):
        get_explainer("integrated_gradients", model, n_steps=0).attribute(docs[:1])
    with pytest.raises(XaipipeError, match="perturbations_per_eval"):
        get_explainer("occlusion", model, perturbations_per_eval=0).attribute(docs[:1])
    assert get_explainer("integrated_gradients", model, n_steps=7).params == {"n_steps": 7, "internal_batch_size": 128}
    # the explain stage passes a seed to every explainer with **params: accepted, ignored (deterministic)
    assert get_explainer("occlusion", model, seed=3).params == {"perturbations_per_eval": 32}
