"""One relevance interface for every model the pipeline explains: one name per method, one registry, one call.

A relevance method answers "how much did each input contribute to the target class's score?". The same
method (LRP z+, gradient x input, LIME, SHAP, ...) is implemented once per **kind of model**, because what
an input is differs:

``text``
    a :class:`~xaipipe.models.TextCNN`-like model (``embed`` + ``forward_embedded``); inputs are documents
    (1-D arrays of vocabulary ids), relevance is one value per word (:mod:`xaipipe.explain`, an
    :class:`~xaipipe.explain.Explainer` class per method).
``mlp``
    a ReLU :class:`~xaipipe.models.MLP`; inputs ``(B, ...)`` tensors, relevance a differentiable tensor of
    the same shape, so that a distillation loss can compare maps (:mod:`xaipipe.distill.relevance`).
``image``
    a convolutional image classifier; inputs ``(N, C, H, W)`` images, relevance one value per SLIC
    superpixel painted over its pixels (:mod:`xaipipe.distill.xdistill.explainers`; needs ``segments``
    and, for SHAP, ``background`` images).
``rnn``
    a :class:`~xaipipe.rnn.cells.RecurrentClassifier` reading image columns; relevance one value per pixel
    (:mod:`xaipipe.rnn.lrp`).

:data:`BUILTIN` is the one table of methods: name -> {kind: module that implements it}. The module binds
its implementation with ``@register(name, kind)`` (each module's own decorators, e.g.
``explain.register``, are this one), and is imported on first use, so a job imports only the libraries
of its method. ``attribute(method, model, inputs, target)`` is the uniform call: it finds the kind of
``model`` and returns the relevance of every input in the input's own layout.

Adding a method = its module (with ``@register``) + one line here; a new model kind for an existing
method = one more entry in that method's line.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .errors import XaipipeError
from .registry import registrar

#: the kinds of model (and input) a relevance method can be implemented for
KINDS: tuple[str, ...] = ("text", "mlp", "image", "rnn")

#: every built-in relevance method: name -> {model kind: module that registers its implementation}
BUILTIN: dict[str, dict[str, str]] = {
    "rde": {"text": "xaipipe.explain.rde"},
    "greedy": {"text": "xaipipe.explain.greedy"},
    "lrp_epsilon": {"text": "xaipipe.explain.lrp"},
    "lrp_zplus": {"text": "xaipipe.explain.lrp", "mlp": "xaipipe.distill.relevance"},
    "lrp_alpha2beta1": {"text": "xaipipe.explain.lrp"},
    "lrp_w2": {"text": "xaipipe.explain.lrp"},
    "lrp_zbox": {"text": "xaipipe.explain.lrp"},
    "deep_taylor": {"rnn": "xaipipe.rnn.lrp"},
    "rap": {"mlp": "xaipipe.distill.relevance"},
    "sensitivity": {"text": "xaipipe.explain.gradients"},
    "gradient_x_input": {"text": "xaipipe.explain.gradients", "mlp": "xaipipe.distill.relevance"},
    "integrated_gradients": {"text": "xaipipe.explain.gradients"},
    "occlusion": {"text": "xaipipe.explain.gradients"},
    "gradcam": {"image": "xaipipe.distill.xdistill.explainers"},
    "lime": {"text": "xaipipe.explain.surrogate", "image": "xaipipe.distill.xdistill.explainers"},
    "shap": {"text": "xaipipe.explain.surrogate", "image": "xaipipe.distill.xdistill.explainers"},
}

#: the registered implementations, per kind: kind -> {name -> implementation}; filled as modules are imported
IMPLEMENTATIONS: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise XaipipeError(f"unknown kind of model {kind!r}; known: {', '.join(KINDS)}")


def register(name: str, kind: str, set_name: bool = False) -> Callable[[Any], Any]:
    """``@register(name, kind)`` binds the implementation of method ``name`` for ``kind`` models. A pair
    taken is refused (a built-in one too, even before its module was imported). With ``set_name`` the
    registered class gets ``cls.name = name``."""
    _check_kind(kind)
    _load(name, kind)  # inside the built-in module itself this is the module being imported: no-op
    return registrar(IMPLEMENTATIONS[kind], f"{kind} relevance method", set_name=set_name)(name)


def _load(name: str, kind: str) -> None:
    """Import the module that registers the built-in ``name`` for ``kind`` (nothing for other names)."""
    module = BUILTIN.get(name, {}).get(kind)
    if module is not None and name not in IMPLEMENTATIONS[kind]:
        importlib.import_module(module)


def implementations(kind: str) -> dict[str, Any]:
    """Every method for ``kind`` models, name -> implementation: the built-ins (their modules imported now)
    and any registered by other code."""
    _check_kind(kind)
    for name, kinds in BUILTIN.items():
        if kind in kinds:
            _load(name, kind)
    return IMPLEMENTATIONS[kind]


def names(kind: str | None = None) -> list[str]:
    """Names of the methods for ``kind`` models (every kind: ``None``), built-in and registered; nothing is
    imported."""
    kinds = KINDS if kind is None else (kind,)
    out = {n for n, ks in BUILTIN.items() if any(k in ks for k in kinds)}
    for k in kinds:
        out |= set(IMPLEMENTATIONS[k])
    return sorted(out)


def get(name: str, kind: str) -> Any:
    """The implementation of ``name`` for ``kind`` models; an unknown pair is an error naming what exists."""
    _check_kind(kind)
    _load(name, kind)
    try:
        return IMPLEMENTATIONS[kind][name]
    except KeyError:
        others = [k for k in KINDS if k in BUILTIN.get(name, {}) or name in IMPLEMENTATIONS[k]]
        where = f" (it exists for {', '.join(others)} models)" if others else ""
        raise XaipipeError(f"unknown relevance method {name!r} for {kind} models{where}; known for {kind}: "
                           f"{', '.join(names(kind))}") from None


def kind_of(model: nn.Module) -> str:
    """The kind of ``model``: ``text`` (has ``embed`` and ``forward_embedded``), ``rnn`` (a
    ``RecurrentClassifier``), ``mlp`` (Linear/ReLU/Dropout/Flatten layers only) or ``image``."""
    if hasattr(model, "embed") and hasattr(model, "forward_embedded"):
        return "text"
    from .rnn.cells import RecurrentClassifier

    if isinstance(model, RecurrentClassifier):
        return "rnn"
    from .distill.relevance import SUPPORTED

    leaves = [m for m in model.modules() if not list(m.children())]
    if leaves and all(isinstance(m, SUPPORTED) for m in leaves):
        return "mlp"
    return "image"


def attribute(method: str, model: nn.Module, inputs: Any, target: Sequence[int] | torch.Tensor | None = None,
              kind: str | None = None, **params: Any) -> list[np.ndarray] | np.ndarray | torch.Tensor:
    """Relevance of every input of ``inputs`` for ``target`` (one class per input; default: the predicted
    class) by ``method``, for any kind of model (``kind``: detected from ``model`` when not given).

    Returns, in the inputs' own layout: ``text``: one array per document (one value per word); ``mlp``: a
    tensor shaped like ``inputs`` (differentiable in the model's weights); ``image``: ``(N, H, W)``
    superpixel maps (``params`` must give ``segments`` and, for SHAP, ``background``); ``rnn``: ``(N, H, W)``
    pixel relevance. ``params`` are the method's parameters."""
    kind = kind or kind_of(model)
    impl = get(method, kind)
    if kind == "text":
        return [e.relevance for e in impl(model, **params).attribute(inputs, target)]
    if kind == "mlp":
        from .distill.relevance import relevance_from_trace, trace_mlp

        if params:
            raise XaipipeError(f"{method} for MLPs takes no parameters, got {', '.join(sorted(params))}")
        trace = trace_mlp(model, inputs)
        t = trace.logits.argmax(1) if target is None else torch.as_tensor(target, device=trace.logits.device)
        return relevance_from_trace(method, trace, t)[:, 0]
    if kind == "image":
        params = dict(params)
        try:
            segments = params.pop("segments")
        except KeyError:
            raise XaipipeError(f"{method} for images needs segments= (SLIC superpixels, one map per image)") from None
        background = params.pop("background", None)
        seed = params.pop("seed", 0)
        if target is None:
            with torch.no_grad():
                target = model.eval()(inputs).argmax(1).cpu().numpy()
        return impl(model, inputs, segments, np.asarray(target), background=background, seed=seed, **params)
    return impl(model, inputs, target, **params).relevance


__all__ = ["BUILTIN", "IMPLEMENTATIONS", "KINDS", "attribute", "get", "implementations", "kind_of", "names",
           "register"]
