"""The explainer interface and registry (Captum-style: one ``attribute`` call per method).

Every method explains a :class:`~xaipipe.models.TextCNN`-like model, i.e. a module with
``embed(tokens) -> (B, N, E)`` and ``forward_embedded(x, lengths) -> (B, n_classes)`` logits, where padding
positions beyond ``lengths`` do not change a document's logits. An explainer takes a batch of documents
of different lengths (1-D arrays of vocabulary ids) and one target class per document (default: the
predicted class) and returns one relevance value per word, in word order.

Adding a method = one module with a class decorated by ``@register("name")`` + one line in
:data:`xaipipe.relevance.BUILTIN` (the one table of relevance methods, every kind of model) + the declaration of its parameters (types, ranges, defaults) in
:mod:`xaipipe.method_params`, which :func:`resolve_params` reads. Method modules are imported on first
use (:func:`get_explainer`, :func:`methods`): a job imports only its method's libraries (Zennit, Captum,
``lime`` and ``shap`` take seconds each to import, the evaluation needs none of them). Convention: every explainer accepts a
``seed`` keyword (the pipeline passes
the config's seed to each; deterministic methods ignore it) and rejects unknown parameters. Names that
start with ``_`` are reserved for helpers that tests register.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .. import relevance
from ..errors import XaipipeError

#: the registered text methods (name -> class): the ``text`` table of :mod:`xaipipe.relevance`, the one
#: registry of every relevance method; filled as their modules are imported (see :func:`methods`)
METHODS: dict[str, type["Explainer"]] = relevance.IMPLEMENTATIONS["text"]

#: built-in text method name -> module of :mod:`xaipipe.explain` that registers it (imported on first use);
#: read from :data:`xaipipe.relevance.BUILTIN`
BUILTIN: dict[str, str] = {name: kinds["text"].rsplit(".", 1)[1] for name, kinds in relevance.BUILTIN.items()
                           if "text" in kinds}


def register(name: str):
    """``@register("name")`` adds an :class:`Explainer` class (``relevance.register(name, "text")``); a name
    taken is refused (a built-in name too, even before its module was imported)."""
    return relevance.register(name, "text", set_name=True)


def _load(name: str) -> None:
    """Import the module that registers the built-in method ``name`` (nothing for other names)."""
    relevance._load(name, "text")


def methods() -> dict[str, type["Explainer"]]:
    """Every method: the built-ins (their modules imported now) and any registered by other code."""
    return relevance.implementations("text")


def get_explainer(method: str, model: nn.Module, **params: Any) -> "Explainer":
    _load(method)
    try:
        cls = METHODS[method]
    except KeyError:
        known = ", ".join(sorted(methods()))
        raise XaipipeError(f"unknown explanation method {method!r}; known: {known}") from None
    return cls(model, **params)


def resolve_params(name: str, params: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The method's defaults updated by ``params``.

    Without ``defaults`` the declaration of ``name`` in :mod:`xaipipe.method_params` is the source: every
    parameter is checked there (name, type, range; one-line :class:`XaipipeError` naming the parameter, the
    value and what is allowed), so the API, ``xaipipe explain`` and the config check before any job agree.
    With an explicit ``defaults`` dict (methods not declared yet) only unknown names are refused."""
    if defaults is None:
        from ..method_params import check_params, defaults as declared

        undeclared = [m for m in METHODS if m.startswith("_")]  # helpers registered by tests
        check_params(name, params, f"{name}: ", stage=False, extra_methods=undeclared)
        return {**declared(name), **params}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise XaipipeError(f"{name}: unknown parameter(s) {', '.join(unknown)}; known: {known}")
    return {**defaults, **params}


def model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def pad_embedded(model: nn.Module, docs: Sequence[np.ndarray | torch.Tensor],
                 device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed and zero-pad documents: ``(B, N_max, E)`` and lengths ``(B,)``."""
    device = device or model_device(model)
    lengths = torch.tensor([len(d) for d in docs], dtype=torch.long, device=device)
    width = int(lengths.max())
    ids = torch.zeros(len(docs), width, dtype=torch.long, device=device)
    for i, d in enumerate(docs):
        ids[i, : len(d)] = torch.as_tensor(np.array(d, dtype=np.int64), device=device)  # a copy: inputs may be read-only
    with torch.no_grad():
        x = model.embed(ids)
    return x, lengths


@torch.no_grad()
def predict_docs(model: nn.Module, docs: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Predicted class of each document (unpadded semantics), in token-budget batches as the training's
    :func:`~xaipipe.train.predict` (one 58,000-word 20NG post padded a batch of 64 to 3.7 M positions)."""
    from ..train import PREDICT_MAX_TOKENS, token_budget_batches  # train imports the models, not this

    pred = np.zeros(len(docs), dtype=np.int64)
    for idx in token_budget_batches(np.array([len(d) for d in docs]), batch_size, PREDICT_MAX_TOKENS):
        x, lengths = pad_embedded(model, [docs[k] for k in idx])
        pred[idx] = model.forward_embedded(x, lengths).argmax(1).cpu().numpy()
    return pred


@dataclass
class Explanation:
    """Relevance per word for one document (plus what produced it)."""

    relevance: np.ndarray
    target: int
    seconds: float
    extra: dict = field(default_factory=dict)


class Explainer:
    """Base class. Subclasses implement :meth:`_attribute_batch` (or override :meth:`attribute`)."""

    name: str = "base"
    #: documents explained together in one call of :meth:`_attribute_batch`
    batch_docs: int = 16

    def __init__(self, model: nn.Module, **params: Any):
        self.model = model
        self.params = params

    def attribute(self, docs: Sequence[np.ndarray], target: Sequence[int] | None = None) -> list[Explanation]:
        docs = [np.asarray(d, dtype=np.int64) for d in docs]
        for d in docs:
            if d.ndim != 1 or len(d) == 0:
                raise XaipipeError("every document must be a non-empty 1-D array of vocabulary ids")
        was_training = self.model.training
        self.model.eval()  # dropout off while explaining; the caller's mode is restored below
        try:
            if target is None:
                target = predict_docs(self.model, docs)
            return self._attribute_all(docs, [int(t) for t in target])
        finally:
            self.model.train(was_training)

    def _attribute_all(self, docs: list[np.ndarray], target: list[int]) -> list[Explanation]:
        if len(target) != len(docs):
            raise XaipipeError(f"{len(target)} targets for {len(docs)} documents: give one target class per document")
        out: list[Explanation] = []
        for i in range(0, len(docs), self.batch_docs):
            chunk, tchunk = docs[i:i + self.batch_docs], target[i:i + self.batch_docs]
            t0 = time.perf_counter()
            rels = self._attribute_batch(chunk, tchunk)
            per_doc = (time.perf_counter() - t0) / len(chunk)
            for d, t, r in zip(chunk, tchunk, rels):
                extra = {}
                if isinstance(r, tuple):
                    r, extra = r
                r = np.asarray(r, dtype=np.float64).reshape(-1)
                if len(r) != len(d):
                    raise XaipipeError(f"{self.name}: {len(r)} relevance values for a {len(d)}-word document")
                out.append(Explanation(r, t, per_doc, extra))
        return out

    def _attribute_batch(self, docs: list[np.ndarray], target: list[int]) -> list:
        """One relevance array per document, or ``(relevance, extra_dict)`` tuples."""
        raise NotImplementedError
