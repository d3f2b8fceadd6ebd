"""Evaluation of relevance maps (report section 4 and the curves of section 6).

* :mod:`.deletion` -- accuracy/probability after deleting the k most relevant words (zero vector, clipped
  Gaussian noise or neutral words), random-order baseline, flip curves of misclassified documents
  (Figures 22/26). Vectorised, with looping references for tests.
* :mod:`.distortion` -- distortion between ``Φ(Y)`` and ``Φ(X)`` when only the k most relevant words are
  kept and the rest is noise (the RDE paper's metric, forms l1/l2/l4 of section 3.2).
* :mod:`.scores` -- AOPC, bootstrap summaries, planted-keyword precision/recall, Spearman, AUC.
"""

from .deletion import (
    MODES,
    deletion_curves,
    deletion_curves_naive,
    misclassified_flip_curves,
    order_by_relevance,
)
from .distortion import FORMS, distortion_curves, distortion_curves_naive
from .scores import aopc, planted_auc, rank_correlation, summarize, topk_correctness

__all__ = [
    "FORMS", "MODES", "aopc", "deletion_curves", "deletion_curves_naive", "distortion_curves",
    "distortion_curves_naive", "misclassified_flip_curves", "order_by_relevance", "planted_auc",
    "rank_correlation", "summarize", "topk_correctness",
]
