"""Perturbation-based surrogate explanations over word presence: LIME and SHAP (report section 9).

Both methods see a document of ``L`` words as ``L`` binary *interpretable features* ``z' in {0,1}^L``
(word present / absent). An absent word is replaced by the **zero vector** in embedding space; the
document keeps its length and every other word keeps its position (the report's "zero vector"
perturbation, section 4 / Figure 6). The explained function is the model's output for the target class on
the perturbed document: the softmax probability (``output="prob"``, default, as ``predict_proba`` in
the ``lime`` package) or the logit (``output="logit"``).

``lime``
    Sources: the LIME notes in ``shared/papers/001_e03a18f0c12c1bca.txt`` ("Local Interpretable Model
    Agnostic Representation": ``argmin_g L(f, g, pi_x) + Omega(g)`` with the locality-weighted square loss
    ``sum_z pi_x(z) (f(z) - g(z'))^2``, an exponential kernel ``pi_x(z) = exp(-D(x, z)^2 / sigma^2)``, a linear
    ``g = w_g^T z'`` and ``Omega(g) = ||w_g||_0``, "using a LASSO style algorithm"), i.e. Ribeiro, Singh &
    Guestrin, "Why should I trust you?", KDD 2016; implementation: ``lime.lime_base.LimeBase`` of the
    ``lime`` package (0.2).

    ``LimeTextExplainer`` works on strings (it re-joins and re-tokenises text and deletes words), so it is
    not used. Instead this module reproduces its neighbourhood sampling on word positions and hands the
    data to ``LimeBase.explain_instance_with_data``, exactly as ``LimeTextExplainer`` does internally:

    * sample 0 is the document itself; each of the other ``num_samples - 1`` samples removes
      ``k ~ U{1..L}`` distinct positions chosen uniformly (``LimeTextExplainer.__data_labels_distances``);
    * distance ``D`` = cosine distance of ``z'`` to the all-ones vector x 100, kernel
      ``sqrt(exp(-D^2 / kernel_width^2))`` with ``kernel_width=25`` (the ``lime`` text defaults);
    * the surrogate is ``lime``'s weighted ``Ridge(alpha=1)``. With ``num_features=None`` (default) every
      word is kept (``feature_selection="none"``) because the pipeline needs one value per word; with
      ``num_features=K`` the K words are chosen by ``lime``'s ``"lasso_path"`` (K-LASSO of the paper, the
      ``||w||_0`` constraint) and all other words get 0.

    All perturbed samples of a document go through the model in batched forwards of ``batch_size``; for
    TextCNN models through the first-layer fast path (:mod:`xaipipe.models.fast`, same values up to float
    rounding, about 15-40x cheaper per sample).

    **Memory:** the neighbourhood (``num_samples x L`` float64) and ``lime``'s weighted ridge regression
    over it (a few copies) need about ``40 · num_samples · L`` bytes, 400 MB at 1000 samples and 10,000
    words; a 200,000-word document would need 8 GB. Documents longer than ``max_words`` (10,000) are
    refused with a message saying so before any work; the model evaluations themselves run in bounded
    chunks (:class:`PresenceModel`).

``shap``
    Source: Lundberg & Lee, "A unified approach to interpreting model predictions", NeurIPS 2017;
    implementation: the ``shap`` package (0.51). ``shap.maskers.Text`` is string/tokenizer based, so the
    explained "input" is the presence vector ``z' = 1`` itself and the masker replaces hidden features by
    the background ``z' = 0`` (one all-zeros background row), i.e. the hidden words become zero vectors:

    * ``algorithm="partition"`` (default): ``shap.PartitionExplainer`` with ``shap.maskers.Partition`` and
      a fixed hierarchy over *adjacent* word spans (a balanced binary tree: halves, quarters, ...; like
      the span tree ``shap.maskers.Text`` builds for text). Owen values; ``max_evals`` model evaluations
      per document. The values always add up to ``f(all present) - f(all absent)``. shap expands the
      spans in order of their effect and breaks ties with the global NumPy generator, so the search
      runs with that generator seeded from the document's seed (below): spans of equal effect (repeated
      words, spans that change nothing) are then expanded in the same order in every process.
    * ``algorithm="permutation"``: ``shap.PermutationExplainer`` with ``shap.maskers.Independent``
      (antithetic random permutations, seeded). It needs at least ``2 L + 1`` evaluations per document, so
      ``max_evals`` is raised to that where it is smaller (reported per document as ``extra["max_evals"]``).

    ``batch_size`` is passed to shap, which calls the model with at most that many masked documents.
    A one-word document has the exact value ``f(1) - f(0)`` (no sampling needed).

Determinism: each document gets its own random stream derived from ``seed`` and the document's word
ids, so a document's explanation does not depend on which other documents share its batch. The global
NumPy random state, which shap's partition search draws its tie-breaks from and
``shap.PermutationExplainer`` reseeds, is seeded per document and restored afterwards.
"""

from __future__ import annotations

import warnings
import zlib
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import XaipipeError
from ..models.fast import DocumentProjection, use_fast_path
from .base import Explainer, model_device, register, resolve_params

_OUTPUTS = ("prob", "logit")


def _doc_seed(seed: int | None, doc: np.ndarray) -> int | None:
    """A 32-bit seed from the method seed and the document's word ids (None: fresh entropy)."""
    if seed is None:
        return None
    crc = zlib.crc32(np.ascontiguousarray(doc, dtype=np.int64).tobytes())
    return int(np.random.SeedSequence([int(seed), crc, len(doc)]).generate_state(1)[0])


@contextmanager
def _global_numpy_seed(seed: int | None):
    """Run a block with the global NumPy generator seeded with ``seed`` (None: left as it is) and restore
    the caller's global state afterwards."""
    state = np.random.get_state()
    try:
        if seed is not None:
            np.random.seed(seed)
        yield
    finally:
        np.random.set_state(state)


def _check_output(output: str) -> str:
    if output not in _OUTPUTS:
        raise XaipipeError(f"output must be one of {_OUTPUTS}, not {output!r}")
    return output


def _check_positive(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise XaipipeError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


class PresenceModel:
    """``f(z')``: target-class output of one document whose words with ``z'_i = 0`` are zero vectors.

    Called with a ``(n, L)`` array of presence values (0/1; fractional values scale the vectors), it
    runs the model in forwards of at most ``batch_size`` documents and returns ``(n,)`` floats. Memory is
    bounded whatever ``n`` and ``L``: rows are converted per forward, and the direct path (a full
    ``(rows, L, E)`` input) takes fewer rows for long documents (at most :attr:`max_input_elems` values).
    """

    #: direct path: at most this many input values (rows x words x embedding dimensions) per forward
    max_input_elems = 1 << 24

    def __init__(self, model: nn.Module, doc: np.ndarray, target: int, output: str = "prob",
                 batch_size: int = 128):
        self.model = model
        self.target = int(target)
        self.output = _check_output(output)
        self.batch_size = int(batch_size)
        self.device = model_device(model)
        ids = torch.as_tensor(np.asarray(doc, dtype=np.int64), device=self.device)[None]
        with torch.no_grad():
            self.emb = model.embed(ids)  # (1, L, E)
        self.length = int(ids.shape[1])
        self.n_evals = 0
        self.n_forwards = 0
        # TextCNN: evaluate masked copies from the first layer's tap projections (xaipipe.models.fast)
        self.proj = DocumentProjection(model, self.emb[0]) if use_fast_path(model) else None

    @torch.no_grad()
    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z).reshape(-1, self.length)  # no float copy of the whole neighbourhood
        out = np.empty(len(z), dtype=np.float64)
        rows = self.batch_size
        if self.proj is None:
            rows = max(1, min(rows, self.max_input_elems // max(1, self.length * int(self.emb.shape[-1]))))
        for i in range(0, len(z), rows):
            m = torch.as_tensor(np.asarray(z[i:i + rows], dtype=np.float32), dtype=self.emb.dtype,
                                device=self.device)
            if self.proj is not None:
                logits = self.proj.logits(m)
            else:
                x = self.emb * m[:, :, None]
                lengths = torch.full((len(m),), self.length, dtype=torch.long, device=self.device)
                logits = self.model.forward_embedded(x, lengths)
            if self.output == "prob":
                y = F.softmax(logits.double(), dim=1)[:, self.target]
            else:
                y = logits[:, self.target].double()
            out[i:i + len(m)] = y.cpu().numpy()
            self.n_forwards += 1
        self.n_evals += len(z)
        return out


def lime_neighbourhood(length: int, num_samples: int, rng: np.random.RandomState) -> np.ndarray:
    """``LimeTextExplainer``'s neighbourhood on word positions: row 0 all ones, each other row with
    ``k ~ U{1..L}`` distinct positions set to 0."""
    data = np.ones((num_samples, length))
    sizes = rng.randint(1, length + 1, num_samples - 1)
    for i, size in enumerate(sizes, start=1):
        data[i, rng.choice(length, size, replace=False)] = 0
    return data


def _lime_kernel(d: np.ndarray, kernel_width: float) -> np.ndarray:
    return np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2))  # lime_text.LimeTextExplainer's kernel


@register("lime")
class LimeExplainer(Explainer):
    """LIME weights of word presence (see module docstring)."""

    def __init__(self, model: nn.Module, **params: Any):
        p = resolve_params(self.name, params)  # declared in xaipipe.method_params
        super().__init__(model, **p)
        self.num_samples = _check_positive("num_samples", p["num_samples"], 2)
        self.batch_size = _check_positive("batch_size", p["batch_size"])
        self.kernel_width = float(p["kernel_width"])
        if not self.kernel_width > 0:
            raise XaipipeError(f"kernel_width must be > 0, not {p['kernel_width']!r}")
        self.seed = p["seed"]
        self.output = _check_output(p["output"])
        self.num_features = None if p["num_features"] is None else _check_positive("num_features", p["num_features"])
        self.max_words = _check_positive("max_words", p["max_words"])

    def attribute(self, docs, target=None):
        for d in docs:  # refuse before any work (memory grows with num_samples x words)
            self._check_length(len(d))
        return super().attribute(docs, target)

    def _check_length(self, length: int) -> None:
        if length > self.max_words:
            need = 40 * self.num_samples * length
            raise XaipipeError(
                f"lime: a document of {length:,} words is longer than max_words = {self.max_words:,}: LIME's "
                f"neighbourhood and regression need about {need / 2**30:.1f} GiB (40 bytes x num_samples "
                f"{self.num_samples:,} x words); explain a shorter text (pipeline: explain.max_doc_len) or raise "
                f"max_words if the memory is there")

    def explain_one(self, doc: np.ndarray, target: int) -> tuple[np.ndarray, dict]:
        from lime.lime_base import LimeBase
        from sklearn.metrics import pairwise_distances

        length = len(doc)
        self._check_length(length)
        seed = _doc_seed(self.seed, doc)
        rng = np.random.RandomState(seed)
        f = PresenceModel(self.model, doc, target, self.output, self.batch_size)
        data = lime_neighbourhood(length, self.num_samples, rng)
        labels = f(data)
        distances = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
        k = length if self.num_features is None else min(self.num_features, length)
        selection = "none" if k == length else "lasso_path"
        base = LimeBase(partial(_lime_kernel, kernel_width=self.kernel_width), random_state=seed)
        intercept, weights, score, local_pred = base.explain_instance_with_data(
            data, labels[:, None], distances, 0, k, feature_selection=selection)
        rel = np.zeros(length)
        for j, w in weights:
            rel[int(j)] = w
        extra = {"intercept": float(intercept), "score": float(score),
                 "local_pred": float(np.ravel(local_pred)[0]), "f_full": float(labels[0]),
                 "n_evals": f.n_evals}
        return rel, extra

    def _attribute_batch(self, docs: list[np.ndarray], target: list[int]) -> list[tuple[np.ndarray, dict]]:
        return [self.explain_one(d, t) for d, t in zip(docs, target)]


def span_tree(n: int) -> np.ndarray:
    """A scipy-style linkage ``(n - 1, 4)`` over ``n`` positions merging adjacent spans: a balanced
    binary tree (left half, right half, recursively). Distance = span size (monotone)."""
    rows: list[list[float]] = []

    def build(a: int, b: int) -> int:
        if b - a == 1:
            return a
        m = (a + b) // 2
        left, right = build(a, m), build(m, b)
        rows.append([left, right, float(b - a), float(b - a)])
        return n + len(rows) - 1

    build(0, n)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


@register("shap")
class ShapExplainer(Explainer):
    """SHAP values of word presence (see module docstring)."""

    def __init__(self, model: nn.Module, **params: Any):
        p = resolve_params(self.name, params)  # declared in xaipipe.method_params
        super().__init__(model, **p)
        if p["algorithm"] not in ("partition", "permutation"):
            raise XaipipeError(f"shap algorithm must be 'partition' or 'permutation', not {p['algorithm']!r}")
        self.algorithm = p["algorithm"]
        self.max_evals = _check_positive("max_evals", p["max_evals"], 3)
        self.batch_size = _check_positive("batch_size", p["batch_size"])
        self.seed = p["seed"]
        self.output = _check_output(p["output"])

    def explain_one(self, doc: np.ndarray, target: int) -> tuple[np.ndarray, dict]:
        with warnings.catch_warnings():  # shap 0.51 warns about matplotlib colormap setters on import
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            import shap

        length = len(doc)
        f = PresenceModel(self.model, doc, target, self.output, self.batch_size)
        x = np.ones((1, length))
        background = np.zeros((1, length))
        max_evals = self.max_evals
        if length == 1:  # one player: its Shapley value is the whole difference
            f1, f0 = f(np.array([[1.0], [0.0]]))
            values, base_value = np.array([f1 - f0]), f0
        elif self.algorithm == "partition":
            masker = shap.maskers.Partition(background, clustering=span_tree(length))
            # shap's Owen search breaks ties between equally promising spans with np.random.randn() from
            # the global NumPy generator: seeded here, or equal-priority spans (repeated words, spans
            # without effect) are expanded in another order under the max_evals budget in every process
            with _global_numpy_seed(_doc_seed(self.seed, doc)):
                ex = shap.PartitionExplainer(f, masker)(x, max_evals=max_evals, batch_size=self.batch_size,
                                                        silent=True)
            values, base_value = ex.values[0], float(np.ravel(ex.base_values)[0])
        else:
            max_evals = max(max_evals, 2 * length + 1)
            masker = shap.maskers.Independent(background)
            with _global_numpy_seed(None):  # PermutationExplainer reseeds the global generator itself
                explainer = shap.PermutationExplainer(f, masker, seed=_doc_seed(self.seed, doc))
                ex = explainer(x, max_evals=max_evals, batch_size=self.batch_size, silent=True)
            values, base_value = ex.values[0], float(np.ravel(ex.base_values)[0])
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        extra = {"base_value": float(base_value), "n_evals": f.n_evals, "max_evals": int(max_evals)}
        return values, extra

    def _attribute_batch(self, docs: list[np.ndarray], target: list[int]) -> list[tuple[np.ndarray, dict]]:
        return [self.explain_one(d, t) for d, t in zip(docs, target)]
