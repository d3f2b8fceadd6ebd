"""LRP / deep Taylor explainers (xaipipe.explain.lrp) against matrix-form reference implementations.

The reference (numpy, float64, no Zennit) writes every rule as ``R_j = sum_k q_jk / (sum_j q_jk + bias
term) R_k`` with an explicit contribution matrix ``q`` (thesis eq. 3.1-3.3, Table 3.1), treats each
convolution window as a dense layer on its ``K x E`` inputs, and routes the relevance of each max-pooled
channel explicitly to its argmax window. The model under test runs in float64 so the comparison is tight.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaipipe.errors import XaipipeError
from xaipipe.explain.base import METHODS, get_explainer, pad_embedded

from xaipipe.explain.gradients import target_gradient  # (importing it registers gradient_x_input)
from xaipipe.explain.lrp import LRPExplainer, word_support
from xaipipe.models import TextCNN

pytestmark = pytest.mark.usefixtures("torch_single_thread")

LRP_METHODS = ["lrp_epsilon", "lrp_zplus", "lrp_alpha2beta1", "lrp_w2", "lrp_zbox"]
# (first-layer rule, upper-layer rule) of each method in the reference
RULES = {
    "lrp_epsilon": ("epsilon", "epsilon"),
    "lrp_zplus": ("zplus", "zplus"),
    "lrp_alpha2beta1": ("alphabeta", "alphabeta"),
    "lrp_w2": ("w2", "zplus"),
    "lrp_zbox": ("zbox", "zplus"),
}
N_VOCAB, EMB_DIM, CHANNELS, HIDDEN, N_CLASSES = 12, 3, 4, 5, 3
LENGTHS = [1, 2, 4, 7, 30]
TARGETS = [0, 2, 1, 1, 0]
STAB = 1e-6  # Zennit's default stabilizer of z+, alpha-beta, w^2, z^beta
EPSILON = 0.01  # lrp_epsilon's default


def make_model(kernel_size: int = 2, seed: int = 2, dtype=torch.float64) -> TextCNN:
    """Tiny TextCNN (seed 2: every test document keeps live units up to the target logit for every rule,
    so no reference comparison is a trivial 0 == 0)."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(N_VOCAB, EMB_DIM, generator=g)
    emb[0] = 0.0
    torch.manual_seed(seed)
    m = TextCNN(emb, n_classes=N_CLASSES, channels=CHANNELS, kernel_size=kernel_size, hidden=[HIDDEN])
    with torch.no_grad():
        m.conv.bias.uniform_(-0.5, 0.5)
    return m.to(dtype).eval()


def distinct_window_doc(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Random ids 1..11 whose k-grams are all different (no tied windows in the max-pool)."""
    while True:
        doc = rng.integers(1, N_VOCAB, n)
        grams = {tuple(doc[i:i + k]) for i in range(max(n - k + 1, 1))}
        if len(grams) == max(n - k + 1, 1):
            return doc


@pytest.fixture(params=[2, 3], ids=["K2", "K3"])
def model(request) -> TextCNN:
    return make_model(request.param)


@pytest.fixture
def docs(model) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [distinct_window_doc(rng, n, model.kernel_size) for n in LENGTHS]


# --- matrix-form reference -------------------------------------------------------------------------


def stab(d: np.ndarray, eps: float) -> np.ndarray:
    """Zennit's stabilizer: ``d + eps * sign(d)`` with ``sign(0) = +1``."""
    return d + eps * np.where(d >= 0, 1.0, -1.0)


def dense_rule(rule: str, a, W, b, R, *, eps=STAB, support=None, low=None, high=None) -> np.ndarray:
    """Relevance of the inputs ``a`` ``(J,)`` of ``z = W a + b`` (``W`` ``(K, J)``) given the output
    relevance ``R`` ``(K,)``; ``Q[j, k]`` is the contribution of input j to output k."""
    Wt = W.T
    wp, wn = np.maximum(Wt, 0), np.minimum(Wt, 0)
    ap, an = np.maximum(a, 0)[:, None], np.minimum(a, 0)[:, None]
    if rule == "epsilon":  # R_j = sum_k a_j w_jk / (z_k + b_k + eps sign) R_k
        Q = a[:, None] * Wt
        return Q / stab(Q.sum(0) + b, eps) @ R
    if rule == "zplus":  # positive contributions a+ w+ and a- w-; positive bias in the denominator
        Q = ap * wp + an * wn
        return Q / stab(Q.sum(0) + np.maximum(b, 0), eps) @ R
    if rule == "alphabeta":  # eq. 3.3, alpha = 2, beta = 1; negative bias in the negative denominator
        Qp, Qn = ap * wp + an * wn, ap * wn + an * wp
        return (2.0 * (Qp / stab(Qp.sum(0) + np.maximum(b, 0), eps) @ R)
                - 1.0 * (Qn / stab(Qn.sum(0) + np.minimum(b, 0), eps) @ R))
    if rule == "w2":  # Table 3.1: w_jk^2 / sum_j w_jk^2 (over real inputs only), no bias
        Q = support[:, None] * Wt ** 2
        return Q / stab(Q.sum(0), eps) @ R
    if rule == "zbox":  # a_j w_jk - l_j w_jk^+ - h_j w_jk^- (Montavon et al. 2017), bias cancels
        Q = a[:, None] * Wt - low[:, None] * wp - high[:, None] * wn
        return Q / stab(Q.sum(0), eps) @ R
    raise ValueError(rule)


def reference_lrp(model: TextCNN, doc: np.ndarray, target: int, first: str, upper: str, *,
                  eps: float = STAB, low=None, high=None) -> tuple[np.ndarray, float]:
    """Word relevance of ONE unpadded document and the target logit, without Zennit or autograd."""
    P = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    emb, Wc, bc = P["embedding"], P["conv.weight"], P["conv.bias"]  # Wc: (C, E, K)
    linears = [(P[f"classifier.{i}.weight"], P[f"classifier.{i}.bias"])
               for i, m in enumerate(model.classifier) if isinstance(m, torch.nn.Linear)]
    C, E, K = Wc.shape
    L = len(doc)
    width = max(L, K)
    x = np.zeros((width, E))
    x[:L] = emb[doc]
    T = max(L - K + 1, 1)  # windows that start inside the document
    X = np.stack([x[t:t + K].reshape(-1) for t in range(T)])  # (T, K*E), index k*E + e
    Wm = Wc.transpose(0, 2, 1).reshape(C, K * E)  # Wm[c, k*E + e] = Wc[c, e, k]

    # forward
    Z = X @ Wm.T + bc  # (T, C)
    pooled = Z.max(0)
    acts = [np.maximum(pooled, 0)]
    for W, b in linears[:-1]:
        acts.append(np.maximum(W @ acts[-1] + b, 0))
    logits = linears[-1][0] @ acts[-1] + linears[-1][1]

    # backward: output relevance = target logit
    R = np.zeros(len(logits))
    R[target] = logits[target]
    for (W, b), a in zip(reversed(linears), reversed(acts)):
        R = dense_rule(upper, a, W, b, R, eps=eps)  # ReLU / Dropout: pass-through

    # max over time: each channel's relevance goes to its argmax window (exact ties share equally)
    win = (Z == pooled[None, :]).astype(float)
    Rz = win * (R / win.sum(0))[None, :]  # (T, C)

    # conv: each window t is a dense layer X[t] -> Z[t]
    real = (np.arange(width) < L).astype(float)
    lo = np.zeros(E) if low is None else np.broadcast_to(low, (E,))
    hi = np.zeros(E) if high is None else np.broadcast_to(high, (E,))
    Rx = np.zeros((width, E))
    for t in range(T):
        s = np.repeat(real[t:t + K], E)  # padding of a short document is no input (box [0, 0])
        Rx[t:t + K] += dense_rule(first, X[t], Wm, bc, Rz[t], eps=eps, support=s,
                                  low=np.tile(lo, K) * s, high=np.tile(hi, K) * s).reshape(K, E)
    return Rx[:L].sum(1), float(logits[target])


def reference(model, method, doc, target, **params):
    """``reference_lrp`` with the rules and the parameters (defaults included) of ``method``."""
    first, upper = RULES[method]
    emb = model.embedding.double().numpy()
    low = params.get("low", emb.min(0))
    high = params.get("high", emb.max(0))
    eps = params.get("epsilon", EPSILON) if method == "lrp_epsilon" else params.get("stabilizer", STAB)
    return reference_lrp(model, doc, target, first, upper, eps=eps, low=low, high=high)


def zero_biases(model: TextCNN) -> TextCNN:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    return model


# --- tests -----------------------------------------------------------------------------------------


def test_methods_are_registered():
    assert set(LRP_METHODS) <= set(METHODS)
    assert all(issubclass(METHODS[m], LRPExplainer) for m in LRP_METHODS)


@pytest.mark.parametrize("method", LRP_METHODS)
def test_matches_matrix_form_reference(model, docs, method):
    batch = get_explainer(method, model).attribute(docs, TARGETS)
    for d, t, e in zip(docs, TARGETS, batch):
        ref, out = reference(model, method, d, t)
        np.testing.assert_allclose(e.relevance, ref, rtol=1e-7, atol=1e-10)
        assert e.extra["output_relevance"] == pytest.approx(out, rel=1e-10)
        assert np.abs(ref).max() > 1e-3  # not a trivial all-zero comparison


@pytest.mark.parametrize("method", LRP_METHODS)
def test_reference_catches_a_wrong_rule(model, docs, method):
    """The reference distinguishes the rules (so a mix-up in the composites cannot pass)."""
    d, t = docs[-1], TARGETS[-1]
    (e,) = get_explainer(method, model).attribute([d], [t])
    for other in LRP_METHODS:
        if RULES[other] != RULES[method]:
            assert not np.allclose(e.relevance, reference(model, other, d, t)[0], rtol=1e-3, atol=1e-6)


def test_zbox_box_parameters(model, docs):
    params = {"low": -3.0, "high": [2.0, 2.5, 3.0]}
    batch = get_explainer("lrp_zbox", model, **params).attribute(docs, TARGETS)
    for d, t, e in zip(docs, TARGETS, batch):
        np.testing.assert_allclose(e.relevance, reference(model, "lrp_zbox", d, t, **params)[0],
                                   rtol=1e-7, atol=1e-10)
    default = get_explainer("lrp_zbox", model).attribute(docs[-1:], TARGETS[-1:])[0]
    assert not np.allclose(default.relevance, batch[-1].relevance)


@pytest.mark.parametrize(("method", "params"), [("lrp_epsilon", {"epsilon": 0.5}),
                                                ("lrp_zplus", {"stabilizer": 0.05}),
                                                ("lrp_alpha2beta1", {"stabilizer": 0.05}),
                                                ("lrp_w2", {"stabilizer": 0.05})])
def test_epsilon_and_stabilizer_parameters(model, docs, method, params):
    ex = get_explainer(method, model, **params)
    default = get_explainer(method, model)
    for d, t, e, e0 in zip(docs, TARGETS, ex.attribute(docs, TARGETS), default.attribute(docs, TARGETS)):
        np.testing.assert_allclose(e.relevance, reference(model, method, d, t, **params)[0],
                                   rtol=1e-7, atol=1e-10)
    assert not np.allclose(e.relevance, e0.relevance, rtol=1e-4, atol=0)


def test_tied_windows_share_the_relevance(model):
    """A repeated n-gram gives exactly tied windows: ``amax`` splits the channel's relevance equally."""
    doc = np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 4])
    for method in ("lrp_zplus", "lrp_w2"):
        (e,) = get_explainer(method, model).attribute([doc], [0])
        np.testing.assert_allclose(e.relevance, reference(model, method, doc, 0)[0], rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", LRP_METHODS)
def test_one_finite_value_per_word_and_batch_equals_single(method, dtype):
    model = make_model(3, dtype=dtype)
    rng = np.random.default_rng(3)
    docs = [rng.integers(1, N_VOCAB, n) for n in LENGTHS]  # repeated windows allowed here
    ex = get_explainer(method, model)
    batch = ex.attribute(docs, TARGETS)
    assert [len(e.relevance) for e in batch] == LENGTHS
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-12}
    for d, t, e in zip(docs, TARGETS, batch):
        assert np.all(np.isfinite(e.relevance))
        (single,) = ex.attribute([d], [t])
        np.testing.assert_allclose(e.relevance, single.relevance, **tol)


@pytest.mark.parametrize("method", LRP_METHODS)
def test_padding_receives_no_relevance(model, docs, method):
    x, lengths = pad_embedded(model, docs)
    rel, extra = get_explainer(method, model).attribute_embedded(x, lengths, torch.as_tensor(TARGETS))
    assert rel.shape == (len(docs), max(LENGTHS))
    for b, n in enumerate(LENGTHS):
        assert torch.all(rel[b, n:] == 0)
    support = word_support(x, lengths, model.kernel_size)
    assert support.shape == (len(docs), 1, max(max(LENGTHS), model.kernel_size))
    assert support.sum(-1).flatten().tolist() == LENGTHS


@pytest.mark.parametrize("method", ["lrp_epsilon", "lrp_zplus", "lrp_w2", "lrp_zbox"])
def test_conservation_without_biases(model, docs, method):
    """With zero biases (and a negligible stabilizer) every layer is conservative: sum_i R_i = f_t(x),
    also for documents shorter than the kernel (the padding takes no share under w^2 / z^beta)."""
    zero_biases(model)
    params = {"epsilon": 1e-12} if method == "lrp_epsilon" else {"stabilizer": 1e-12}
    for e in get_explainer(method, model, **params).attribute(docs, TARGETS):
        assert e.relevance.sum() == pytest.approx(e.extra["output_relevance"], rel=1e-8)
    if method == "lrp_epsilon":  # epsilon = 0.01 is meant to absorb relevance
        return
    # the default stabilizer (1e-6) swallows R_k eps / (|z_k| + eps): visible, but small, in this tiny net
    for e in get_explainer(method, model).attribute(docs, TARGETS):
        assert e.relevance.sum() == pytest.approx(e.extra["output_relevance"], rel=1e-3)


def test_zplus_bias_absorption(model, docs):
    """z+: a positive bias b_k^+ absorbs R_k b_k^+ / (z_k^+ + b_k^+), so sum_i R_i lies between 0 and
    f_t(x) (same sign, smaller magnitude); with biases <= 0 (deep Taylor, eq. 3.9) nothing is absorbed."""
    with torch.no_grad():
        model.conv.bias.uniform_(0.2, 0.5)
    absorbed = get_explainer("lrp_zplus", model, stabilizer=1e-12).attribute(docs, TARGETS)
    ratios = [e.relevance.sum() / e.extra["output_relevance"] for e in absorbed]
    assert all(0.0 <= r < 0.99 for r in ratios)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(-0.05 * p.abs())
    for e in get_explainer("lrp_zplus", model, stabilizer=1e-12).attribute(docs, TARGETS):
        assert e.relevance.sum() == pytest.approx(e.extra["output_relevance"], rel=1e-8)


def test_epsilon_to_zero_is_gradient_x_input_and_bias_absorption(model, docs):
    """LRP-0 on a ReLU / max-pool network is gradient x input, biases included; the relevance that the
    biases absorb is f_t(x) - sum_i x_i df_t/dx_i."""
    lrp0 = get_explainer("lrp_epsilon", model, epsilon=1e-12).attribute(docs, TARGETS)
    gxi = get_explainer("gradient_x_input", model).attribute(docs, TARGETS)
    gap = []
    for a, b in zip(lrp0, gxi):
        np.testing.assert_allclose(a.relevance, b.relevance, rtol=1e-8, atol=1e-10)
        gap.append(a.extra["output_relevance"] - a.relevance.sum())
    assert max(abs(g) for g in gap) > 1e-3  # the biases do absorb relevance here


def test_hooks_are_removed(model, docs):
    """After an LRP call the model is a plain model again: no hooks, same logits, same gradient."""
    x, lengths = pad_embedded(model, docs)
    t = torch.as_tensor(TARGETS)
    grad_before, logits_before = target_gradient(model, x, lengths, t)
    for method in LRP_METHODS:
        get_explainer(method, model).attribute(docs, TARGETS)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    grad_after, logits_after = target_gradient(model, x, lengths, t)
    assert torch.equal(logits_after, logits_before)
    assert torch.equal(grad_after, grad_before)


def test_bad_parameters_are_errors(model, docs):
    with pytest.raises(XaipipeError, match="unknown parameter"):
        get_explainer("lrp_zplus", model, epsilon=0.1)
    with pytest.raises(XaipipeError, match="low must not exceed high"):
        get_explainer("lrp_zbox", model, low=1.0, high=0.0).attribute(docs[:1])
    with pytest.raises(XaipipeError, match="one per"):
        get_explainer("lrp_zbox", model, low=[-1.0, -1.0]).attribute(docs[:1])
