"""Relevance maps per method (report sections 3, 5, 6, 9): a registry of explainers.

``get_explainer(name, model, **params).attribute(docs, target)`` returns one relevance value per word.
Registered: ``rde`` (L1/L2/L4, Gaussian or neutral noise, adaptive lambda, combined L4->L1), ``greedy``
(GN, GL2/GL4/G-LRP via candidate methods, softmax variant), ``lrp_epsilon``, ``lrp_zplus``,
``lrp_alpha2beta1``, ``lrp_w2``, ``lrp_zbox`` (Zennit), ``sensitivity``, ``gradient_x_input``,
``integrated_gradients``, ``occlusion`` (Captum), ``lime``, ``shap``.

The method modules are imported on first use (``get_explainer``, ``methods()``; ``METHODS`` read from
this package holds them all), so importing the package does not import Zennit, Captum, lime or shap.
"""

from .base import BUILTIN, Explainer, Explanation, get_explainer, methods, pad_embedded, predict_docs, register

__all__ = ["BUILTIN", "METHODS", "Explainer", "Explanation", "get_explainer", "methods", "pad_embedded",
           "predict_docs", "register"]


def __getattr__(name: str):
    if name == "METHODS":  # every method, built-ins imported (PEP 562: only when asked for)
        return methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
