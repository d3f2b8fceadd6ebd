"""Relevance maps per method (report sections 3, 5, 6, 9): a registry of explainers.

``get_explainer(name, model, **params).attribute(docs, target)`` returns one relevance value per word.
Registered: ``rde`` (L1/L2/L4, Gaussian or neutral noise, adaptive lambda, combined L4->L1), ``greedy``
(GN, GL2/GL4/G-LRP via candidate methods, softmax variant), ``lrp_epsilon``, ``lrp_zplus``,
``lrp_alpha2beta1``, ``lrp_w2``, ``lrp_zbox`` (Zennit), ``sensitivity``, ``gradient_x_input``,
``integrated_gradients``, ``occlusion`` (Captum), ``lime``, ``shap``.
"""

from .base import METHODS, Explainer, Explanation, get_explainer, pad_embedded, predict_docs, register
from . import gradients, greedy, lrp, rde, surrogate  # noqa: E402,F401  (importing registers the methods)

__all__ = ["METHODS", "Explainer", "Explanation", "get_explainer", "pad_embedded", "predict_docs", "register"]
