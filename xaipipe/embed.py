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
* **Collapse.** word2vec/fastText trained on a small corpus with few passes leave every vector pointing one
  common way (mean pairwise cosine 0.98 on the planted corpus, 0.99997 for fastText on a 1,200-document
  table) and, once centred, still spread along one or two dominating directions (effective rank 1.1-1.3 of
  50-100): the shared directions grow with every update while the word-specific part hardly moves. A
  frozen-embedding CNN then sees nearly the same input everywhere and trains to chance. Two remedies, both
  here: enough passes over a small corpus (the configs' ``epochs``; a custom dataset's ``epochs: auto``
  gives about five million training tokens: effective rank 30-37 in that example, the CNN at 91-94 %), and
  ``postprocess``:
* ``postprocess: center`` (default) removes the mean word vector before scaling: the mean pairwise cosine
  drops to ~0, and the zero vector -- the "deleted word" of the report's curves and the padding -- becomes
  the average word. ``abtt`` is "all-but-the-top" (Mu & Viswanath 2018): also remove the top
  :func:`abtt_components` principal directions, which rescues under-trained vectors (effective rank 1.3 ->
  46 of 50) but costs well-trained ones information (20 Newsgroups student 55.0 % -> 50.5 %), so it is not
  the default. ``none`` keeps the vectors as trained (or loaded). ``info.json`` records the mean pairwise
  cosine and the effective rank (:func:`effective_rank`) before (``*_raw``) and after post-processing and
  scaling, and the stage warns when the effective rank is below :data:`MIN_EFFECTIVE_RANK_SHARE` of the
  dimension.
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


POSTPROCESS = ("abtt", "center", "none")


#: below this share of the dimension the effective rank of the final vectors draws a warning (collapse)
MIN_EFFECTIVE_RANK_SHARE = 0.05


def abtt_components(dim: int) -> int:
    """Principal directions removed by ``postprocess: abtt``: ``max(2, round(dim / 100))`` -- Mu & Viswanath's
    d/100 (3 for 300-d vectors), at least 2 (measured: on a 6-class planted corpus, word2vec 50-d vectors
    with 10 epochs keep an effective rank of 1.3 after centring, 37 after removing one direction, 46 after
    two; a CNN on them reached 16 %, 75 % and 89 %)."""
    return max(2, int(round(dim / 100)))


def effective_rank(mat: np.ndarray) -> float:
    """Participation ratio ``(Σ λ)² / Σ λ²`` of the covariance eigenvalues of the rows of ``mat`` but row 0:
    the number of directions the word vectors really spread over (``dim`` for isotropic vectors, 1 for
    vectors on a line). The mean pairwise cosine misses this: centred vectors on a line have cosine ~0."""
    v = np.asarray(mat[1:], dtype=np.float64)
    if len(v) < 2:
        return float("nan")
    s = np.linalg.svd(v - v.mean(0), compute_uv=False) ** 2
    return float(s.sum() ** 2 / (s ** 2).sum()) if s.sum() > 0 else 0.0


def mean_cosine(mat: np.ndarray) -> float:
    """Mean pairwise cosine similarity of the rows of ``mat`` but row 0 (padding), over distinct pairs, in
    O(n·d): ``(|Σ u_i|² - n) / (n (n - 1))`` for the unit rows ``u_i``. Zero rows are left out; NaN for
    fewer than two rows."""
    v = np.asarray(mat[1:], dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    v = v[norms > 0] / norms[norms > 0, None]
    n = len(v)
    if n < 2:
        return float("nan")
    total = v.sum(0)
    return float((total @ total - n) / (n * (n - 1)))


def embedding_matrix(vocab: list[str], kv, scale: str = "unit", postprocess: str = "none") -> tuple[np.ndarray, float]:
    """The ``len(vocab) x dim`` matrix (row 0 = zero padding vector): word vectors from ``kv``, then
    ``postprocess`` (``center``: minus the mean word vector), then ``scale``. Returns it and the scale
    factor (``std``)."""
    mat = np.zeros((len(vocab), kv.vector_size), dtype=np.float32)
    for i, w in enumerate(vocab[1:], start=1):
        mat[i] = kv[w]
    if postprocess in ("center", "abtt") and len(vocab) > 2:
        v = mat[1:].astype(np.float64)
        v -= v.mean(0)
        if postprocess == "abtt":  # all-but-the-top: the dominating directions carry frequency, not meaning
            k = min(abtt_components(v.shape[1]), min(v.shape) - 1)
            if k > 0:
                top = np.linalg.svd(v, full_matrices=False)[2][:k]  # (k, dim)
                v -= (v @ top.T) @ top
        mat[1:] = v.astype(np.float32)
    if postprocess not in POSTPROCESS:
        raise ConfigError(f"embedding.postprocess must be one of {', '.join(POSTPROCESS)}, got {postprocess!r}")
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
    postprocess = cfg.get("postprocess", "center")
    raw, _ = embedding_matrix(vocab, kv, "none", "none")
    mat, factor = embedding_matrix(vocab, kv, cfg.get("scale", "unit"), postprocess)
    if not np.isfinite(mat).all():
        raise XaipipeError("the embedding matrix has NaN/inf values (fastText on a tiny vocabulary can do "
                           "this): use more data or set embedding.minn/maxn")
    vs = set(vocab[1:])
    info = {"kind": kind, "dim": dim, "source": source, "n_vocab": len(vocab), "pad_index": 0,
            "pad_vector": "zero", "oov_policy": "drop", "scale": cfg.get("scale", "unit"),
            "scale_factor": factor, "postprocess": postprocess,
            "mean_cosine_raw": round(mean_cosine(raw), 4), "mean_cosine": round(mean_cosine(mat), 4),
            "effective_rank_raw": round(effective_rank(raw), 2), "effective_rank": round(effective_rank(mat), 2),
            **({"abtt_components": abtt_components(dim)} if postprocess == "abtt" else {}), "oov_rate": {"train": oov_rate(train_tokens, vs),
                                                 "test": oov_rate(test_tokens, vs)}}
    if fallback:
        info["pretrained_fallback"] = fallback
    log.info("word vectors as trained: mean pairwise cosine %.3f, effective rank %.1f of %d; after %s and %s "
             "scaling: %.3f, %.1f", info["mean_cosine_raw"], info["effective_rank_raw"], dim, postprocess,
             info["scale"], info["mean_cosine"], info["effective_rank"])
    if info["effective_rank"] < MIN_EFFECTIVE_RANK_SHARE * dim:
        msg = (f"the word vectors have collapsed: effective rank {info['effective_rank']:.1f} of {dim} dimensions "
               f"(mean pairwise cosine as trained {info['mean_cosine_raw']:.2f}); a CNN on them may learn nothing. "
               f"Raise embedding.epochs (now {cfg.get('epochs')}) or set embedding.postprocess: abtt")
        info["warning"] = msg
        log.warning("%s", msg)
    write_vocab(out_vocab, vocab)
    with atomic_path(out_vectors) as tmp:
        np.save(tmp, mat)
    write_json(out_info, info)
    return info
