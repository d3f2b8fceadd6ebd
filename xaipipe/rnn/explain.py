"""Relevance maps of one trained cell on the test images that the figures show (Chormai 2018, section
4.5.1, Figures 4.7-4.9).

Explained images (the same for every model of a dataset: same seed, same test subset):

* ``examples``: ``rnn.figures.n_examples`` seeded random test images (Figure 4.7's columns);
* ``population``: every test image of class ``rnn.figures.class`` (Figure 4.9's "Class 1 testing
  population", at most ``rnn.figures.max_population``, seeded), from which Figure 4.8 draws its grid.

Relevance is deep Taylor LRP through time of the predicted class (:func:`xaipipe.rnn.lrp.explain`).
``relevance.npz`` holds ``index`` (positions in the test subset), ``test_index`` (positions in the
prepared test split), ``images`` (uint8), ``labels``, ``target``, ``pred``, ``output`` (``f(x)``),
``relevance`` (float32, N x 28 x 28) and the ``examples`` / ``population`` positions; ``lrp.json``
the conservation check (``sum R - f(x)``), the rules and the runtime.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import schema
from ..io import atomic_path, write_json
from .cells import load_model
from .lrp import explain
from .train import load_scaled, settings

log = logging.getLogger(__name__)

FIGURE_DEFAULTS = schema.defaults("rnn", "figures")  # as declared in config/schema/rnn.yaml


def figure_settings(cfg: dict) -> dict:
    return {**FIGURE_DEFAULTS, **(cfg.get("figures") or {})}


def select_samples(y: np.ndarray, n_examples: int, figure_class: int, max_population: int | None,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions of the example images and of the class population (both seeded)."""
    rng = np.random.default_rng(seed)
    examples = np.sort(rng.choice(len(y), size=min(int(n_examples), len(y)), replace=False))
    population = np.flatnonzero(y == figure_class)
    if max_population and len(population) > max_population:
        population = np.sort(rng.choice(population, size=int(max_population), replace=False))
    return examples.astype(np.int64), population.astype(np.int64)


def explain_model(model_path: str, test_path: str, cfg: dict, seed: int, out_relevance: str,
                  out_summary: str, device: str = "cpu") -> dict:
    """Explain the figure images with one model; write ``relevance.npz`` and ``lrp.json``."""
    cfg = settings(cfg)
    fig = figure_settings(cfg)
    model, meta = load_model(model_path, map_location=device)
    pixel_range = meta.get("pixel_range", cfg["pixel_range"])  # how the model's inputs were scaled
    low, high = (float(v) for v in pixel_range)
    x, y, raw, keep = load_scaled(test_path, cfg["max_test"], seed + 1, pixel_range)
    examples, population = select_samples(y, fig["n_examples"], fig["class"], fig["max_population"], seed)
    if len(population) == 0:
        log.warning("no test image of class %s: Figures 4.8-4.9 will be empty", fig["class"])
    index = np.union1d(examples, population).astype(np.int64)
    res = explain(model, x[index], low=low, high=high)
    mixed = model.pixel_layer == "cell" and model.recur > 0
    err = res.conservation_error
    scale = np.maximum(np.abs(res.output), 1e-12)
    rel = res.relevance.astype(np.float32)
    with atomic_path(out_relevance) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, index=index, test_index=keep[index], images=raw[index], labels=y[index],
                                target=res.target, pred=res.logits.argmax(1), output=res.output.astype(np.float32),
                                relevance=rel, examples=np.searchsorted(index, examples),
                                population=np.searchsorted(index, population), seq=np.int64(model.seq))
    summary = {
        "cell": model.name, "seq": model.seq, "dataset": meta.get("dataset"), "n_explained": int(len(index)),
        "n_examples": int(len(examples)), "n_population": int(len(population)), "figure_class": fig["class"],
        "target": "predicted class (f(x) = max_i h_i)",
        "rules": {"pixels": f"z^beta, box [{low}, {high}]" + (
                      " on x_t and z+ on r_t in one layer (PixelBoxZPlus)" if mixed else ""),
                  "relu_inputs": "z+", "max_pool": "winner-take-all"},
        "conservation": {"max_abs_error": float(np.abs(err).max(initial=0.0)),
                         "max_rel_error": float((np.abs(err) / scale).max(initial=0.0)),
                         "mean_output_relevance": float(res.output.mean()) if len(index) else None},
        "negative_relevance_share": float((rel < 0).mean()) if rel.size else 0.0,
        "accuracy_on_explained": float((res.logits.argmax(1) == y[index]).mean()) if len(index) else None,
    }  # the time it took is logged and in the rule's benchmark file, not here: lrp.json is byte-identical
    write_json(out_summary, summary)
    log.info("%s-%d: explained %d images in %.1fs, max |sum R - f(x)| = %.2e", model.name, model.seq, len(index),
             res.seconds, summary["conservation"]["max_abs_error"])
    return summary
