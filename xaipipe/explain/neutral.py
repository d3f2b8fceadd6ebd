"""Neutral words (prepositions and articles) for RDE's neutral-word noise and the neutral-word deletion
curves (report sections 3.2 and 4: "word2vec embeddings of 64 different prepositions and articles")."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

NEUTRAL_WORDS: tuple[str, ...] = (
    "a", "an", "the", "about", "above", "across", "after", "against", "along", "amid", "among", "around",
    "as", "at", "before", "behind", "below", "beneath", "beside", "besides", "between", "beyond", "by",
    "concerning", "despite", "down", "during", "except", "for", "from", "in", "inside", "into", "like",
    "near", "of", "off", "on", "onto", "opposite", "out", "outside", "over", "past", "per", "regarding",
    "round", "since", "than", "through", "throughout", "till", "to", "toward", "towards", "under",
    "underneath", "unlike", "until", "up", "upon", "via", "with", "within",
)
assert len(NEUTRAL_WORDS) == 64


def neutral_ids(vocab: list[str], words: list[str] | tuple[str, ...] | None = None,
                n: int | None = None) -> list[int]:
    """Vocabulary ids of the neutral words (``n`` of them: by default as many as words are given, 64 for
    the built-in list). When fewer are in the vocabulary (a corpus of pseudo-words, or a vocabulary that
    dropped stop words), the most frequent vocabulary words fill up (``vocab`` is ordered most frequent
    first after the padding token)."""
    words = list(words or NEUTRAL_WORDS)
    n = len(words) if n is None else n
    w2i = {w: i for i, w in enumerate(vocab)}
    ids = [w2i[w] for w in words if w in w2i][:n]
    if len(ids) < n:
        fill = [i for i in range(1, len(vocab)) if i not in set(ids)][: n - len(ids)]
        log.warning("%d of %d neutral words are in the vocabulary; filled up with the %d most frequent words",
                    len(ids), n, len(fill))
        ids += fill
    return ids
