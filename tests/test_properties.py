"""Property-based tests (hypothesis): tokenisation, padding/masking and the relevance-to-words mapping."""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xaipipe.data.text import TokenizerConfig, tokenize
from xaipipe.explain import get_explainer
from xaipipe.explain.base import pad_embedded
from xaipipe.explain.gradients import split_words
from xaipipe.models import TextCNN
from xaipipe.train import pad_batch

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(max_size=200), st.integers(1, 5), st.integers(5, 30), st.booleans())
def test_tokens_are_words_of_allowed_length_and_idempotent(text, lo, hi, lower):
    cfg = TokenizerConfig(lowercase=lower, min_token_len=lo, max_token_len=hi)
    toks = tokenize(text, cfg)
    assert all(lo <= len(t) <= hi for t in toks)
    assert all(t.strip() == t and t for t in toks)
    if lower:
        assert all(t == t.lower() for t in toks)
    # tokenising the tokens again gives the same tokens (joining with spaces loses nothing)
    assert tokenize(" ".join(toks), cfg) == toks


@FAST
@given(st.lists(st.lists(st.integers(1, 50), min_size=1, max_size=30), min_size=1, max_size=8),
       st.one_of(st.none(), st.integers(1, 40)))
def test_pad_batch_keeps_every_document_prefix_and_pads_with_zero(docs, max_len):
    seqs = [np.asarray(d, dtype=np.int64) for d in docs]
    ids, lengths = pad_batch(seqs, max_len)
    for i, s in enumerate(seqs):
        n = len(s) if max_len is None else min(len(s), max_len)
        assert int(lengths[i]) == n
        assert ids[i, :n].tolist() == s[:n].tolist()
        assert (ids[i, n:] == 0).all()


_G = torch.Generator().manual_seed(0)
_EMB = torch.randn(51, 6, generator=_G)
_EMB[0] = 0
torch.manual_seed(0)
_MODEL = TextCNN(_EMB, 3, channels=5, kernel_size=3, hidden=[4]).eval()


@FAST
@given(st.lists(st.lists(st.integers(1, 50), min_size=1, max_size=25), min_size=1, max_size=5))
def test_padding_never_changes_a_documents_logits(docs):
    docs = [np.asarray(d, dtype=np.int64) for d in docs]
    x, lengths = pad_embedded(_MODEL, docs)
    with torch.no_grad():
        batched = _MODEL.forward_embedded(x, lengths)
        for i, d in enumerate(docs):
            alone = _MODEL(torch.as_tensor(d)[None])[0]
            assert torch.allclose(batched[i], alone, atol=1e-5)


@FAST
@given(st.lists(st.lists(st.integers(1, 50), min_size=1, max_size=25), min_size=1, max_size=4),
       st.sampled_from(["occlusion", "gradient_x_input", "lrp_epsilon"]))
def test_one_relevance_value_per_word_in_word_order(docs, method):
    docs = [np.asarray(d, dtype=np.int64) for d in docs]
    expl = get_explainer(method, _MODEL).attribute(docs)
    alone = [get_explainer(method, _MODEL).attribute([d])[0].relevance for d in docs]
    for e, d, a in zip(expl, docs, alone):
        assert e.relevance.shape == (len(d),) and np.isfinite(e.relevance).all()
        assert np.allclose(e.relevance, a, atol=1e-5)  # the batch (padding) does not change a document's map


@FAST
@given(st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_split_words_drops_exactly_the_padding(lengths):
    width = max(lengths)
    rel = torch.arange(len(lengths) * width, dtype=torch.float32).view(len(lengths), width)
    out = split_words(rel, torch.tensor(lengths))
    for b, (r, n) in enumerate(zip(out, lengths)):
        assert r.tolist() == rel[b, :n].tolist()
