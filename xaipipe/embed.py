"""Word embeddings: train word2vec / fastText (gensim) on the training split, or load pretrained vectors.

Output of the stage: a vocabulary (``vocab.txt``, line *i* is the word with index *i*) and an embedding
matrix (``vectors.npy``, float32, ``n_vocab x dim``).

* Index 0 is the padding token ``<pad>``; its vector is the zero vector (the report pads documents with
  zero vectors, and "deleting" a word replaces its vector by zero).
* The vocabulary holds the training-split words seen at least ``min_count`` times that have a vector
  (with fastText every word has one, built from its character n-grams).
* Out-of-vocabulary policy: tokens that are not in the vocabulary are **dropped** from a document when it
  is encoded (the report feeds only words that have a word2vec vector); the fraction dropped is recorded
  in ``info.json`` per split.
* ``scale: unit`` (default) rescales every word vector to unit L2 norm. Raw word2vec norms grow with
  word frequency, so frequent function words dominated the convolution and the frozen-embedding CNN
  barely trained (initial loss ~20); unit vectors fixed that. ``scale: std`` multiplies the whole matrix
  by one scalar so that its entries have standard deviation 1; ``scale: none`` keeps the raw vectors.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ConfigError, XaipipeError
from .io import atomic_path, write_json

log = logging.getLogger(__name__)

PAD = "<pad>"


def train_vectors(kind: str, sentences: Sequence[Sequence[str]], dim: int = 300, epochs: int = 5,
                  min_count: int = 1, window: int = 5, seed: int = 0, workers: int = 1,
                  sg: int = 0, minn: int = 3, maxn: int = 6):
    """Train word2vec or fastText vectors (gensim) and return their ``KeyedVectors``.

    ``workers=1`` makes the result reproducible for a fixed seed (gensim's threads race otherwise).
    """
    from gensim.models import FastText, Word2Vec

    common = dict(vector_size=dim, window=window, min_count=min_count, seed=seed, workers=workers,
                  epochs=epochs, sg=sg)
    if kind == "word2vec":
        model = Word2Vec(sentences=list(sentences), **common)
    elif kind == "fasttext":
        model = FastText(sentences=list(sentences), min_n=minn, max_n=maxn, **common)
    else:
        raise ConfigError(f"unknown embedding kind {kind!r}: use 'word2vec' or 'fasttext'")
    return model.wv


def load_pretrained(path: str | Path, kind: str, limit: int | None = None):
    """Load pretrained vectors: word2vec ``.bin`` (GoogleNews), fastText ``.bin`` or ``.vec``/``.txt``."""
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

    path = Path(path)
    if not path.is_file():
        raise XaipipeError(f"pretrained vectors {path} not found: fix the config key "
                           f"embedding.pretrained or set it to null to train vectors on the corpus")
    suffixes = "".join(path.suffixes[-2:])
    if path.suffix == ".bin" and kind == "fasttext":
        return load_facebook_vectors(str(path))
    binary = path.suffix == ".bin" or suffixes.endswith(".bin.gz")
    return KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit)


def build_vocabulary(train_tokens: Iterable[Sequence[str]], kv, min_count: int = 1,
                     max_vocab: int | None = None) -> list[str]:
    """``[PAD] + `` the training words (count >= min_count, having a vector), most frequent first."""
    counts = Counter(t for doc in train_tokens for t in doc)
    # ``in`` is True for every word with a vector (for fastText: any word with a known n-gram)
    words = [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if c >= min_count and w in kv]
    if max_vocab:
        words = words[: max_vocab - 1]
    if not words:
        raise XaipipeError("the vocabulary is empty: no training word has a vector (check the data stage "
                           "and embedding.min_count)")
    return [PAD] + words


def embedding_matrix(vocab: list[str], kv, scale: str = "unit") -> tuple[np.ndarray, float]:
    mat = np.zeros((len(vocab), kv.vector_size), dtype=np.float32)
    for i, w in enumerate(vocab[1:], start=1):
        mat[i] = kv[w]
    factor = 1.0
    if scale == "unit":
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        mat /= norms
    elif scale == "std":
        std = float(mat[1:].std())
        factor = 1.0 / std if std > 0 else 1.0
        mat *= factor
    elif scale != "none":
        raise ConfigError(f"embedding.scale must be 'unit', 'std' or 'none', got {scale!r}")
    return mat, factor


def oov_rate(docs: Iterable[Sequence[str]], vocab: set[str]) -> float:
    total = known = 0
    for doc in docs:
        total += len(doc)
        known += sum(t in vocab for t in doc)
    return 1.0 - known / total if total else 0.0


def write_vocab(path: str | Path, vocab: list[str]) -> None:
    if any("\n" in w for w in vocab):
        raise XaipipeError("a vocabulary word contains a newline")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(vocab) + "\n", encoding="utf-8")


def read_vocab(path: str | Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").rstrip("\n").split("\n")


def build_embedding(train_tokens: list[list[str]], test_tokens: list[list[str]], cfg: dict, seed: int,
                    out_vocab: str, out_vectors: str, out_info: str, workers: int = 1) -> dict:
    """Run the whole embedding stage for one dataset (see module docstring)."""
    kind = cfg.get("kind", "word2vec")
    dim = int(cfg.get("dim", 300))
    fallback = None
    if cfg.get("pretrained") and not Path(cfg["pretrained"]).is_file() and cfg.get("pretrained_fallback") == "train":
        fallback = f"pretrained file {cfg['pretrained']} not found; trained on the corpus instead"
        log.warning(fallback)
    if cfg.get("pretrained") and fallback is None:
        kv = load_pretrained(cfg["pretrained"], kind, limit=cfg.get("pretrained_limit"))
        source = f"pretrained:{cfg['pretrained']}"
        if kv.vector_size != dim:
            raise ConfigError(f"pretrained vectors have dimension {kv.vector_size}, config says "
                              f"embedding.dim={dim}: set embedding.dim to {kv.vector_size}")
    else:
        kv = train_vectors(kind, train_tokens, dim=dim, epochs=int(cfg.get("epochs", 5)),
                           min_count=int(cfg.get("min_count", 1)), window=int(cfg.get("window", 5)),
                           seed=seed, workers=workers, sg=int(cfg.get("sg", 0)),
                           minn=int(cfg.get("minn", 3)), maxn=int(cfg.get("maxn", 6)))
        source = "trained on the training split"
    vocab = build_vocabulary(train_tokens, kv, min_count=int(cfg.get("min_count", 1)),
                             max_vocab=cfg.get("max_vocab"))
    mat, factor = embedding_matrix(vocab, kv, cfg.get("scale", "unit"))
    if not np.isfinite(mat).all():
        raise XaipipeError("the embedding matrix has NaN/inf values (fastText on a tiny vocabulary can do "
                           "this): use more data or set embedding.minn/maxn")
    vs = set(vocab[1:])
    info = {"kind": kind, "dim": dim, "source": source, "n_vocab": len(vocab), "pad_index": 0,
            "pad_vector": "zero", "oov_policy": "drop", "scale": cfg.get("scale", "unit"),
            "scale_factor": factor, "oov_rate": {"train": oov_rate(train_tokens, vs),
                                                 "test": oov_rate(test_tokens, vs)}}
    if fallback:
        info["pretrained_fallback"] = fallback
    write_vocab(out_vocab, vocab)
    with atomic_path(out_vectors) as tmp:
        np.save(tmp, mat)
    write_json(out_info, info)
    return info
