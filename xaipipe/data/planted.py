"""The planted-keyword corpus: synthetic documents whose truly relevant words are known.

A seeded generator (offline, seconds): each class owns a few *indicative keywords*; every document is
drawn from a shared background vocabulary with Zipf-like frequencies, has a varied length, contains some
*distractor* words that occur equally often in every class, and gets ``keywords_per_doc`` keywords of its
class planted at random positions (a number, or ``[low, high]``: a number drawn uniformly per document).
With ``cross_rate`` > 0 that share of the documents also gets one keyword of *another* class at a free
position -- a misleading word that is not planted (its ``planted`` flag is False): a model must weigh it
against the document's own keywords, and an explanation must not rank it first. The ground truth (which token positions carry the class) is stored with
every document (column ``planted``: one boolean per token), so explanation methods can be scored by
precision/recall of their top-k words against it.

Words are pronounceable pseudo-words (``"bakotu"``) so that tokenisation, embeddings and heatmaps behave as
for real text.
"""

from __future__ import annotations

import numpy as np

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def pseudo_words(n: int, rng: np.random.Generator, syllables: tuple[int, int] = (2, 4)) -> list[str]:
    """``n`` distinct pronounceable lower-case pseudo-words."""
    words: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        k = int(rng.integers(syllables[0], syllables[1] + 1))
        w = "".join(_CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))]
                    for _ in range(k))
        if w not in words:
            words.add(w)
            out.append(w)
    return out


def generate(n_train: int = 2000, n_test: int = 500, n_classes: int = 4, background_size: int = 2000,
             keywords_per_class: int = 5, keywords_per_doc: int = 3, n_distractors: int = 10,
             distractor_rate: float = 0.05, min_len: int = 20, max_len: int = 120, zipf_a: float = 1.1,
             cross_rate: float = 0.0, seed: int = 0) -> dict:
    """Generate the corpus. Returns ``{"classes", "keywords", "distractors", "train", "test"}`` where each
    split is a dict of lists ``id, tokens, label, planted`` (``planted[i][j]`` is True where token j is a
    planted keyword)."""
    kw_range = keywords_per_doc if isinstance(keywords_per_doc, (list, tuple)) else None
    if kw_range is not None and not (len(kw_range) == 2 and 1 <= int(kw_range[0]) <= int(kw_range[1])):
        raise ValueError(f"keywords_per_doc must be a number or [low, high] with 1 <= low <= high, not {kw_range}")
    if cross_rate > 0 and n_classes < 2:
        raise ValueError("cross_rate > 0 needs at least two classes")
    rng = np.random.default_rng(seed)
    vocab = pseudo_words(background_size + n_classes * keywords_per_class + n_distractors, rng)
    background = vocab[:background_size]
    keywords = [vocab[background_size + c * keywords_per_class: background_size + (c + 1) * keywords_per_class]
                for c in range(n_classes)]
    distractors = vocab[background_size + n_classes * keywords_per_class:]
    ranks = np.arange(1, background_size + 1, dtype=np.float64)
    p = ranks ** -zipf_a
    p /= p.sum()
    classes = [f"class_{c}" for c in range(n_classes)]

    def split(n: int, prefix: str) -> dict:
        out: dict = {"id": [], "tokens": [], "label": [], "planted": []}
        labels = np.arange(n) % n_classes
        rng.shuffle(labels)
        for i, c in enumerate(labels):
            length = int(rng.integers(min_len, max_len + 1))
            toks = [background[j] for j in rng.choice(background_size, size=length, p=p)]
            is_d = rng.random(length) < distractor_rate
            for j in np.flatnonzero(is_d):
                toks[j] = distractors[rng.integers(len(distractors))]
            planted = np.zeros(length, dtype=bool)
            n_kw = keywords_per_doc if kw_range is None else int(rng.integers(kw_range[0], kw_range[1] + 1))
            cross = cross_rate > 0 and rng.random() < cross_rate
            pos = rng.choice(length, size=min(n_kw + int(cross), length), replace=False)
            if cross and len(pos) > 1:  # the last free position gets another class's keyword
                other = (int(c) + 1 + int(rng.integers(n_classes - 1))) % n_classes
                toks[pos[-1]] = keywords[other][rng.integers(keywords_per_class)]
                pos = pos[:-1]
            for j in pos:
                toks[j] = keywords[c][rng.integers(keywords_per_class)]
                planted[j] = True
            out["id"].append(f"{prefix}-{i}")
            out["tokens"].append(toks)
            out["label"].append(int(c))
            out["planted"].append(planted.tolist())
        return out

    return {"classes": classes, "keywords": keywords, "distractors": distractors,
            "train": split(n_train, "train"), "test": split(n_test, "test")}
