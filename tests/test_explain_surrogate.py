"""LIME and SHAP over word presence (xaipipe.explain.surrogate): one value per word in word order,
zero-vector masking, determinism, batched model calls, SHAP efficiency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from xaipipe.errors import XaipipeError
from xaipipe.explain import surrogate  # noqa: F401  (registers lime and shap)
from xaipipe.explain.base import METHODS, get_explainer
from xaipipe.models.text_cnn import TextCNN

pytestmark = pytest.mark.usefixtures("torch_single_thread")

N_VOCAB, EMB_DIM, N_CLASSES = 30, 8, 3
LENGTHS = (1, 5, 12)

# small budgets: the tests check properties, not the quality of the estimates
VARIANTS = {
    "lime": ("lime", {"num_samples": 300, "batch_size": 64}),
    "shap_partition": ("shap", {"algorithm": "partition", "max_evals": 200, "batch_size": 64}),
    "shap_permutation": ("shap", {"algorithm": "permutation", "max_evals": 150, "batch_size": 64}),
}


def make_docs(lengths=LENGTHS, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, N_VOCAB, n) for n in lengths]


@pytest.fixture(scope="module")
def cnn() -> TextCNN:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(N_VOCAB, EMB_DIM, generator=g)
    emb[0] = 0.0
    torch.manual_seed(0)
    model = TextCNN(emb, N_CLASSES, channels=6, kernel_size=3, hidden=(5,), dropout=0.5)
    with torch.no_grad():
        model.conv.bias.uniform_(-0.3, 0.3)
    return model.eval()


class PositionalLinear(nn.Module):
    """``logit_c = b_c + sum_i a_i * (x_i . W_c)`` over the first ``length`` positions: additive in the
    words and position-dependent (a deleted word would shift the later words' weights ``a_i``)."""

    def __init__(self, emb: torch.Tensor, n_classes: int = 2, max_len: int = 64):
        super().__init__()
        self.register_buffer("embedding", emb)
        g = torch.Generator().manual_seed(1)
        self.w = nn.Parameter(torch.randn(emb.shape[1], n_classes, generator=g))
        self.b = nn.Parameter(torch.randn(n_classes, generator=g))
        self.register_buffer("a", torch.linspace(0.5, 2.0, max_len))

    def embed(self, tokens):
        return F.embedding(tokens, self.embedding)

    def forward_embedded(self, x, lengths=None):
        n = x.shape[1]
        valid = torch.ones(x.shape[0], n, dtype=torch.bool, device=x.device)
        if lengths is not None:
            valid = torch.arange(n, device=x.device)[None, :] < lengths[:, None]
        per_word = (x @ self.w) * (self.a[:n] * valid)[:, :, None]
        return self.b + per_word.sum(1)

    def contributions(self, doc: np.ndarray, target: int) -> np.ndarray:
        """Exact additive contribution of each word to the target logit."""
        with torch.no_grad():
            x = self.embed(torch.as_tensor(doc)[None])[0]
            return ((x @ self.w)[:, target] * self.a[: len(doc)]).numpy().astype(np.float64)


class CountingModel(nn.Module):
    """Wraps a model and records the batch size of every ``forward_embedded`` call."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls: list[int] = []

    def embed(self, tokens):
        return self.inner.embed(tokens)

    def forward_embedded(self, x, lengths=None):
        self.calls.append(int(x.shape[0]))
        return self.inner.forward_embedded(x, lengths)


def one_word_cnn(special: int) -> TextCNN:
    """A TextCNN whose logits depend on exactly one vocabulary word: only ``special``'s vector has a
    non-zero coordinate along the only input channel the convolution reads."""
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(N_VOCAB, EMB_DIM, generator=g)
    emb[:, 0] = 0.0
    emb[special, 0] = 2.0
    model = TextCNN(emb, 2, channels=4, kernel_size=3, hidden=(), dropout=0.0)
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.weight[:, 0, :] = torch.linspace(0.5, 1.5, 12).reshape(4, 3)
        model.conv.bias.fill_(0.1)
        model.classifier[-1].weight.copy_(torch.tensor([[1.0, 0.5, 0.8, 1.2], [-1.0, -0.2, -0.7, -0.4]]))
        model.classifier[-1].bias.zero_()
    return model.eval()


def target_output(model, doc, target, present: bool, output: str = "prob") -> float:
    """The model's output on the document with every word present / every word a zero vector."""
    with torch.no_grad():
        x = model.embed(torch.as_tensor(doc)[None])
        if not present:
            x = torch.zeros_like(x)
        logits = model.forward_embedded(x, torch.tensor([len(doc)]))
        y = F.softmax(logits.double(), 1) if output == "prob" else logits.double()
        return float(y[0, target])


def test_registered():
    assert {"lime", "shap"} <= set(METHODS)
    assert METHODS["lime"] is surrogate.LimeExplainer and METHODS["shap"] is surrogate.ShapExplainer


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_finite_value_per_word(cnn, variant):
    name, params = VARIANTS[variant]
    docs = make_docs()
    out = get_explainer(name, cnn, **params).attribute(docs)
    assert [len(e.relevance) for e in out] == list(LENGTHS)
    for e in out:
        assert np.all(np.isfinite(e.relevance))
    assert np.abs(out[2].relevance).max() > 0  # not a trivial all-zero map


@pytest.mark.parametrize("variant", VARIANTS)
def test_same_seed_same_result(cnn, variant):
    name, params = VARIANTS[variant]
    docs = make_docs(seed=1)
    a = get_explainer(name, cnn, seed=7, **params).attribute(docs)
    b = get_explainer(name, cnn, seed=7, **params).attribute(docs)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.relevance, y.relevance)


@pytest.mark.parametrize("variant", ["lime", "shap_permutation"])
def test_seed_matters_and_batch_does_not(cnn, variant):
    """The random stream is per document: another seed changes the estimate, other documents in the
    batch do not."""
    name, params = VARIANTS[variant]
    docs = make_docs(lengths=(12, 9, 5), seed=2)
    batch = get_explainer(name, cnn, seed=0, **params).attribute(docs)
    alone = get_explainer(name, cnn, seed=0, **params).attribute(docs[2:])
    np.testing.assert_array_equal(batch[2].relevance, alone[0].relevance)
    other = get_explainer(name, cnn, seed=1, **params).attribute(docs[:1])
    assert not np.allclose(batch[0].relevance, other[0].relevance)


@pytest.mark.parametrize("variant", VARIANTS)
def test_single_relevant_word_ranks_first(variant):
    special = 7
    model = one_word_cnn(special)
    name, params = VARIANTS[variant]
    rng = np.random.default_rng(4)
    docs, where = [], []
    for n in LENGTHS:
        d = rng.integers(1, N_VOCAB, n)
        d[d == special] = special + 1
        pos = int(rng.integers(0, n))
        d[pos] = special
        docs.append(d)
        where.append(pos)
    out = get_explainer(name, model, **params).attribute(docs, target=[0] * len(docs))
    for e, pos in zip(out, where):
        assert int(np.argmax(np.abs(e.relevance))) == pos
        assert e.relevance[pos] > 0  # the word raises the class-0 probability
    if name == "shap":  # the other words are dummy players: zero (up to float32 noise)
        for e, pos in zip(out, where):
            np.testing.assert_allclose(np.delete(e.relevance, pos), 0.0, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_additive_model_values_in_word_order(variant):
    """On a model additive in position-weighted words, SHAP is exact and LIME's surrogate recovers the
    coefficients: checks word order and that absent words are zero vectors, not deletions."""
    g = torch.Generator().manual_seed(5)
    model = PositionalLinear(torch.randn(N_VOCAB, EMB_DIM, generator=g)).eval()
    name, params = VARIANTS[variant]
    docs = make_docs(seed=5)
    out = get_explainer(name, model, output="logit", **params).attribute(docs, target=[1] * len(docs))
    for e, d in zip(out, docs):
        want = model.contributions(d, 1)
        if name == "shap":
            np.testing.assert_allclose(e.relevance, want, rtol=1e-6, atol=1e-6)
        elif len(d) > 1:  # lime's ridge (alpha=1) shrinks a little; one-word LIME is degenerate
            np.testing.assert_allclose(e.relevance, want, rtol=0.05, atol=0.05 * np.abs(want).max())


@pytest.mark.parametrize("variant", ["shap_partition", "shap_permutation"])
@pytest.mark.parametrize("output", ["prob", "logit"])
def test_shap_efficiency(cnn, variant, output):
    name, params = VARIANTS[variant]
    docs = make_docs(lengths=(1, 5, 12, 20), seed=6)
    targets = [0, 1, 2, 1]
    out = get_explainer(name, cnn, output=output, **params).attribute(docs, target=targets)
    for e, d, t in zip(out, docs, targets):
        full = target_output(cnn, d, t, present=True, output=output)
        empty = target_output(cnn, d, t, present=False, output=output)
        assert e.relevance.sum() == pytest.approx(full - empty, abs=1e-6)
        assert e.extra["base_value"] == pytest.approx(empty, abs=1e-6)


def test_lime_surrogate_fits_the_document(cnn):
    docs = make_docs(lengths=(12,), seed=8)
    e = get_explainer("lime", cnn, num_samples=300).attribute(docs, target=[2])[0]
    assert e.extra["f_full"] == pytest.approx(target_output(cnn, docs[0], 2, True), abs=1e-6)
    assert e.extra["n_evals"] == 300
    # the local linear model predicts the unperturbed document roughly
    assert e.extra["local_pred"] == pytest.approx(e.extra["intercept"] + e.relevance.sum(), abs=1e-9)


def test_lime_num_features_keeps_k_words(cnn):
    docs = make_docs(lengths=(12,), seed=9)
    e = get_explainer("lime", cnn, num_samples=300, num_features=3).attribute(docs)[0]
    assert np.count_nonzero(e.relevance) == 3


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_calls_are_batched(cnn, variant):
    name, params = VARIANTS[variant]
    params = {**params, "batch_size": 50}
    model = CountingModel(cnn)
    docs = make_docs(lengths=(12,), seed=10)
    e = get_explainer(name, model, **params).attribute(docs, target=[0])[0]
    calls = model.calls
    assert max(calls) <= 50
    assert sum(calls) == e.extra["n_evals"]
    if name == "lime":  # 300 samples in full batches of 50
        assert calls == [50] * 6
    else:  # shap hands over many masked documents per call
        assert len(calls) < e.extra["n_evals"] / 5


def test_permutation_raises_max_evals_to_its_minimum(cnn):
    docs = make_docs(lengths=(12,), seed=11)
    e = get_explainer("shap", cnn, algorithm="permutation", max_evals=5).attribute(docs)[0]
    assert e.extra["max_evals"] == 25 and np.all(np.isfinite(e.relevance))


@pytest.mark.parametrize("name,bad", [
    ("shap", {"algorithm": "kernel"}),
    ("shap", {"output": "proba"}),
    ("shap", {"max_evals": 0}),
    ("lime", {"num_samples": 1}),
    ("lime", {"kernel_width": 0}),
    ("lime", {"batch_size": 2.5}),
])
def test_bad_params(cnn, name, bad):
    with pytest.raises(XaipipeError):
        get_explainer(name, cnn, **bad)


# --- memory on long documents ---------------------------------------------------------------------------

_PEAK_SCRIPT = r"""
import json, resource, sys
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from conftest import random_text_cnn
from xaipipe.errors import XaipipeError
from xaipipe.explain import get_explainer

length, samples = int(sys.argv[2]), int(sys.argv[3])
model = random_text_cnn(50, 8, 3)
rng = np.random.default_rng(0)
get_explainer("lime", model, num_samples=samples).attribute([rng.integers(1, 50, 40)])  # imports, warm-up
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    e = get_explainer("lime", model, num_samples=samples).attribute([rng.integers(1, 50, length)])[0]
    out = {"ok": bool(np.isfinite(e.relevance).all() and len(e.relevance) == length)}
except XaipipeError as exc:
    out = {"error": str(exc)}
out["extra_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""


def lime_peak(tmp_path, length: int, samples: int) -> dict:
    """Peak memory growth (MB, ru_maxrss of a fresh process after a warm-up) of LIME on one document."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "peak.py"
    script.write_text(_PEAK_SCRIPT)
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(script), str(root / "tests"), str(length), str(samples)],
                         capture_output=True, text=True, timeout=300, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_lime_refuses_a_200000_word_document_with_bounded_memory(tmp_path):
    """LIME's neighbourhood and regression grow with num_samples x words (8 GB for 200,000 words at the
    default 1000 samples): such a document is refused at once, naming max_words, with no memory spent."""
    out = lime_peak(tmp_path, 200_000, 100)
    assert "error" in out, out
    assert "a document of 200,000 words is longer than max_words = 10,000" in out["error"]
    assert out["extra_mb"] < 50, out


def test_lime_memory_on_a_long_allowed_document_stays_within_the_documented_bound(tmp_path):
    """40 bytes x num_samples x words (plus a fixed allowance) covers a 10,000-word document (= max_words)."""
    samples, length = 300, 10_000
    out = lime_peak(tmp_path, length, samples)
    assert out.get("ok"), out
    assert out["extra_mb"] < (40 * samples * length) / 2**20 + 64, out


def test_lime_max_words_is_a_parameter(cnn):
    docs = make_docs(lengths=(12,), seed=3)
    with pytest.raises(XaipipeError, match="a document of 12 words is longer than max_words = 10"):
        get_explainer("lime", cnn, num_samples=20, max_words=10).attribute(docs)
    assert len(get_explainer("lime", cnn, num_samples=20, max_words=12).attribute(docs)[0].relevance) == 12
