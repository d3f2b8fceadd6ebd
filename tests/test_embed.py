"""Embedding stage: word2vec / fastText training, vocabulary, matrix scaling, pretrained vectors
(xaipipe.embed)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xaipipe.embed import (
    PAD,
    build_embedding,
    build_vocabulary,
    embedding_matrix,
    mean_cosine,
    load_pretrained,
    oov_rate,
    read_vocab,
    train_vectors,
    write_vocab,
)
from xaipipe.errors import ConfigError, XaipipeError

DIM = 16
FUNCTION_WORDS = ["the", "a", "of", "and", "to", "in", "is", "that", "it", "for", "on", "with"]
TOPIC_PREFIXES = ("space", "auto", "faith")


def make_corpus(n_docs: int, seed: int, words_per_doc: int = 30) -> list[list[str]]:
    """Documents of 3 topics (40 topic words each) mixed with shared function words."""
    rng = np.random.default_rng(seed)
    topics = [[f"{p}{i}" for i in range(40)] for p in TOPIC_PREFIXES]
    docs = []
    for d in range(n_docs):
        vocab = topics[d % 3]
        doc = [vocab[int(rng.integers(40))] if rng.random() < 0.6 else FUNCTION_WORDS[int(rng.integers(12))]
               for _ in range(words_per_doc)]
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def corpus():
    train = make_corpus(300, seed=0)
    test = make_corpus(60, seed=1)
    test[0] = test[0][:10] + ["unseenword", "neverseen", "zzzq"] + test[0][13:]
    return train, test


@pytest.fixture(scope="module")
def w2v(corpus):
    return train_vectors("word2vec", corpus[0], dim=DIM, epochs=2, seed=0)


def run_build(tmp_path: Path, train, test, cfg: dict, seed: int = 0, tag: str = "emb"):
    out = tmp_path / tag
    paths = (out / "vocab.txt", out / "vectors.npy", out / "info.json")
    info = build_embedding(train, test, cfg, seed, *map(str, paths))
    return info, read_vocab(paths[0]), np.load(paths[1]), json.loads(paths[2].read_text())


@pytest.mark.parametrize("kind", ["word2vec", "fasttext"])
def test_build_embedding(tmp_path, corpus, kind):
    train, test = corpus
    cfg = {"kind": kind, "dim": DIM, "epochs": 2, "min_count": 1, "window": 5, "scale": "unit", "minn": 3,
           "maxn": 5}
    info, vocab, vectors, info_file = run_build(tmp_path, train, test, cfg)
    assert vocab[0] == PAD == "<pad>"
    assert vectors.dtype == np.float32 and vectors.shape == (len(vocab), DIM)
    assert not vectors[0].any()
    np.testing.assert_allclose(np.linalg.norm(vectors[1:], axis=1), 1.0, rtol=1e-5)
    # the vocabulary is the set of training words, most frequent first (ties alphabetical)
    counts = Counter(t for doc in train for t in doc)
    assert set(vocab[1:]) == set(counts) and len(vocab) == len(set(vocab))
    assert vocab[1:] == sorted(counts, key=lambda w: (-counts[w], w))
    assert set(vocab[1:13]) == set(FUNCTION_WORDS)
    # info.json
    assert info_file == json.loads(json.dumps(info))
    assert info["kind"] == kind and info["dim"] == DIM and info["n_vocab"] == len(vocab)
    assert info["pad_index"] == 0 and info["pad_vector"] == "zero" and info["oov_policy"] == "drop"
    assert info["scale"] == "unit" and info["scale_factor"] == 1.0
    assert info["source"] == "trained on the training split"
    assert info["oov_rate"]["train"] == 0.0
    n_test = sum(len(d) for d in test)
    assert info["oov_rate"]["test"] == pytest.approx(3 / n_test)


def test_build_embedding_is_reproducible(tmp_path, corpus):
    cfg = {"kind": "word2vec", "dim": DIM, "epochs": 2, "scale": "unit"}
    _, v1, m1, _ = run_build(tmp_path, *corpus, cfg, seed=5, tag="a")
    _, v2, m2, _ = run_build(tmp_path, *corpus, cfg, seed=5, tag="b")
    _, _, m3, _ = run_build(tmp_path, *corpus, cfg, seed=6, tag="c")
    assert v1 == v2
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(m1, m3)


def test_build_embedding_min_count_and_max_vocab(tmp_path, corpus):
    train, test = corpus
    train = train + [["rareword"]]
    cfg = {"kind": "word2vec", "dim": DIM, "epochs": 1, "min_count": 2, "max_vocab": 20, "scale": "unit"}
    info, vocab, vectors, _ = run_build(tmp_path, train, test, cfg)
    assert len(vocab) == 20 and vectors.shape == (20, DIM)
    assert "rareword" not in vocab
    assert info["oov_rate"]["train"] > 0


def test_build_embedding_default_scale_is_unit(tmp_path, corpus):
    # LIBRARY BUG (xaipipe/embed.py, build_embedding): the module docstring says "``scale: unit``
    # (default)" and config/schema.yaml has default unit, but build_embedding falls back to
    # cfg.get("scale", "std") (and embedding_matrix defaults to "std"), so a caller that leaves out
    # `scale` gets std-scaled vectors with raw-norm differences instead of unit vectors.
    info, _vocab, vectors, _ = run_build(tmp_path, *corpus, {"kind": "word2vec", "dim": DIM, "epochs": 1})
    assert info["scale"] == "unit"
    np.testing.assert_allclose(np.linalg.norm(vectors[1:], axis=1), 1.0, rtol=1e-5)


def test_build_embedding_unknown_kind(tmp_path, corpus):
    with pytest.raises(ConfigError, match="unknown embedding kind 'glove'"):
        run_build(tmp_path, *corpus, {"kind": "glove", "dim": DIM})
    assert not (tmp_path / "emb").exists()


# --- matrix scaling and helpers -------------------------------------------------------------------

def test_embedding_matrix_scales(w2v, corpus):
    vocab = build_vocabulary(corpus[0], w2v)
    raw, f_none = embedding_matrix(vocab, w2v, "none")
    np.testing.assert_array_equal(raw[1:], np.stack([w2v[w] for w in vocab[1:]]))
    assert f_none == 1.0 and not raw[0].any()
    std, factor = embedding_matrix(vocab, w2v, "std")
    assert float(std[1:].std()) == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(std, raw * factor, rtol=1e-5)
    unit, _ = embedding_matrix(vocab, w2v, "unit")
    np.testing.assert_allclose(np.linalg.norm(unit[1:], axis=1), 1.0, rtol=1e-5)
    assert not unit[0].any()
    with pytest.raises(ConfigError, match="embedding.scale"):
        embedding_matrix(vocab, w2v, "l2")


def test_build_vocabulary_empty_raises(w2v):
    with pytest.raises(XaipipeError, match="vocabulary is empty"):
        build_vocabulary([["notinvectors"]], w2v)


def test_oov_rate():
    assert oov_rate([["a", "b"], ["c", "a"]], {"a"}) == pytest.approx(0.5)
    assert oov_rate([[], []], {"a"}) == 0.0


@pytest.mark.parametrize("vocab", [
    [PAD, "the", "don't", "café", "привет", "日本語", "123"],
    [PAD],
    [PAD, "a b", "x\ty"],
])
def test_vocab_round_trip(tmp_path, vocab):
    path = tmp_path / "sub" / "vocab.txt"
    write_vocab(path, vocab)
    assert read_vocab(path) == vocab
    assert path.read_text(encoding="utf-8").endswith("\n")


def test_write_vocab_rejects_newlines(tmp_path):
    with pytest.raises(XaipipeError, match="newline"):
        write_vocab(tmp_path / "v.txt", [PAD, "two\nlines"])
    assert not (tmp_path / "v.txt").exists()


# --- pretrained vectors ---------------------------------------------------------------------------

def write_vec(path: Path, words: dict[str, list[float]]) -> Path:
    dim = len(next(iter(words.values())))
    lines = [f"{len(words)} {dim}"] + [w + " " + " ".join(f"{x:.6f}" for x in v) for w, v in words.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def vec_file(tmp_path, corpus):
    rng = np.random.default_rng(0)
    words = {w: rng.normal(size=4).round(4).tolist() for w in ["the", "of", "space0", "space1", "auto0", "café"]}
    return write_vec(tmp_path / "tiny.vec", words), words


def test_load_pretrained_vec_text_format(vec_file):
    path, words = vec_file
    kv = load_pretrained(path, "word2vec")
    assert kv.vector_size == 4 and len(kv) == len(words)
    for w, v in words.items():
        np.testing.assert_allclose(kv[w], v, atol=1e-6)
    assert len(load_pretrained(path, "fasttext", limit=2)) == 2  # .vec is text for fastText too


def test_load_pretrained_missing_file_names_config_key(tmp_path):
    with pytest.raises(XaipipeError, match="embedding.pretrained") as exc:
        load_pretrained(tmp_path / "GoogleNews-vectors-negative300.bin", "word2vec")
    assert "GoogleNews-vectors-negative300.bin" in str(exc.value)


def test_build_embedding_from_pretrained(tmp_path, vec_file, corpus):
    path, words = vec_file
    train, test = corpus
    info, vocab, vectors, _ = run_build(tmp_path, train, test,
                                        {"kind": "word2vec", "dim": 4, "pretrained": str(path), "scale": "none",
                                         "postprocess": "none"})
    assert info["source"] == f"pretrained:{path}"
    assert vocab[0] == PAD and set(vocab[1:]) == {"the", "of", "space0", "space1", "auto0"}  # only training words
    for i, w in enumerate(vocab[1:], start=1):
        np.testing.assert_allclose(vectors[i], words[w], atol=1e-6)
    assert 0 < info["oov_rate"]["train"] < 1


def test_build_embedding_pretrained_dim_mismatch(tmp_path, vec_file, corpus):
    with pytest.raises(ConfigError, match="set embedding.dim to 4"):
        run_build(tmp_path, *corpus, {"kind": "word2vec", "dim": 300, "pretrained": str(vec_file[0])})


def test_mean_cosine_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    mat = np.vstack([np.zeros((1, 5)), rng.normal(size=(9, 5)) + 2.0, np.zeros((1, 5))]).astype(np.float32)
    v = mat[1:-1] / np.linalg.norm(mat[1:-1], axis=1, keepdims=True)
    cos = v @ v.T
    want = (cos.sum() - np.trace(cos)) / (len(v) * (len(v) - 1))  # zero rows are left out
    assert mean_cosine(mat) == pytest.approx(want, rel=1e-6)
    assert np.isnan(mean_cosine(mat[:2]))


def test_center_keeps_collapsed_vectors_apart(tmp_path):
    """Vectors that all point one way (a common direction plus a small word-specific part, as word2vec
    leaves them on a small corpus): centring removes the shared part, the mean pairwise cosine drops from
    ~1 to ~0, the word-specific part (and so which word is which) is kept, and info.json records both."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(200)]
    own = rng.normal(size=(200, 16)) * 0.05
    kv = KeyedVectors(16)
    kv.add_vectors(words, (np.ones(16) + own).astype(np.float32))
    vocab = [PAD] + words
    collapsed, _ = embedding_matrix(vocab, kv, "unit", "none")
    centred, _ = embedding_matrix(vocab, kv, "unit", "center")
    assert mean_cosine(collapsed) > 0.99
    assert abs(mean_cosine(centred)) < 0.05
    want = own - own.mean(0)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(centred[1:], want, atol=1e-4)
    assert not centred[0].any()  # the padding vector stays zero
    with pytest.raises(ConfigError, match="postprocess"):
        embedding_matrix(vocab, kv, "unit", "whiten")


def test_abtt_spreads_vectors_that_lie_on_a_line():
    """Centred vectors can still lie along one dominating direction (what word2vec leaves on a small
    corpus: effective rank ~1): all-but-the-top removes it and the vectors spread over the other
    directions again; effective_rank is the participation ratio of the covariance spectrum."""
    from gensim.models import KeyedVectors

    from xaipipe.embed import abtt_components, effective_rank

    rng = np.random.default_rng(2)
    axis = rng.normal(size=32)
    vecs = np.outer(rng.normal(size=300) * 5.0, axis) + rng.normal(size=(300, 32)) * 0.05 + 3.0
    kv = KeyedVectors(32)
    kv.add_vectors([f"w{i}" for i in range(300)], vecs.astype(np.float32))
    vocab = [PAD] + [f"w{i}" for i in range(300)]
    centred, _ = embedding_matrix(vocab, kv, "unit", "center")
    abtt, _ = embedding_matrix(vocab, kv, "unit", "abtt")
    assert abtt_components(32) == 2 and abtt_components(300) == 3 and abtt_components(1000) == 10
    assert abs(mean_cosine(centred)) < 0.05 and effective_rank(centred) < 1.5  # the cosine misses it
    assert effective_rank(abtt) > 25 and abs(mean_cosine(abtt)) < 0.05
    iso = rng.normal(size=(5000, 8))
    assert effective_rank(np.vstack([np.zeros(8), iso])) == pytest.approx(8, rel=0.05)


def test_build_embedding_records_the_mean_cosine(tmp_path, corpus):
    train, test = corpus
    from xaipipe.embed import effective_rank

    info, _vocab, vectors, _ = run_build(tmp_path, train, test, {"kind": "word2vec", "dim": 8, "epochs": 2})
    assert info["postprocess"] == "center" and "abtt_components" not in info
    assert info["effective_rank"] == pytest.approx(effective_rank(vectors), abs=0.01)
    assert info["mean_cosine"] == pytest.approx(mean_cosine(vectors), abs=1e-4)
    assert info["mean_cosine_raw"] > info["mean_cosine"]
