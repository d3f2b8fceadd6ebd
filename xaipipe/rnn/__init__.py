"""Explainable-by-design recurrent networks (Chormai 2018, "Designing Recurrent Neural Networks for
Explainability", chapter 4): sequential MNIST / Fashion-MNIST, the Shallow, Deep, DeepV2 and ConvDeep
cells with non-positive (softplus) biases, deep Taylor LRP through time with Zennit, and the thesis's
Tables 4.3 / 4.5 and Figures 4.7-4.9.

Modules: :mod:`.data` (column split, raw files), :mod:`.cells` (cells, checkpoints), :mod:`.lrp`
(rules and the unrolled explainer), :mod:`.train`, :mod:`.explain` (the figure images), :mod:`.figures`,
:mod:`.tables`, :mod:`.plan` (the workflow's jobs), :mod:`.published` (the thesis's numbers).
"""

from .cells import CELLS, RecurrentClassifier, build_cell, count_parameters, load_model, save_model
from .data import merge_columns, scale_pixels, split_columns
from .lrp import (LRPResult, PixelBoxZPlus, UnrolledRNN, deep_taylor_composite, explain, explain_unrolled,
                  step_relevance)
from .plan import RNNPlan, make_plan

__all__ = [
    "CELLS",
    "LRPResult",
    "PixelBoxZPlus",
    "RNNPlan",
    "RecurrentClassifier",
    "UnrolledRNN",
    "build_cell",
    "count_parameters",
    "deep_taylor_composite",
    "explain",
    "explain_unrolled",
    "load_model",
    "make_plan",
    "merge_columns",
    "save_model",
    "scale_pixels",
    "split_columns",
    "step_relevance",
]
