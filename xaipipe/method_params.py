"""The declared parameters of every explanation method: name, type, range or choices, default, one-line doc.

This module is THE single source of the explainers' defaults (:func:`defaults`, read by
:func:`xaipipe.explain.base.resolve_params`) and of the checks of a configured variant
(``<dataset>.explain.methods.<variant>: {method: NAME, **parameters}``), of ``xaipipe explain --params``
and of a greedy variant's ``candidate_params``. It imports neither torch nor numpy, so the Snakefile checks
every variant while it parses (before any job, in about a millisecond) without loading the explainers.

It lives outside :mod:`xaipipe.explain` on purpose: importing anything of that package runs its
``__init__``, which imports torch and registers the explainers.

Adding a method: declare its parameters in :data:`METHOD_PARAMS` (a test checks that the declared names
equal what the registered explainer accepts). Error messages are one line::

    config: planted.explain.methods.lime.num_samples = -50 must be an integer >= 2
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Mapping

from .errors import ConfigError

__all__ = ["METHOD_PARAMS", "RDE_PRESETS", "Param", "check_params", "check_variant", "declared_methods", "defaults",
           "describe", "suggest"]


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``kind``: ``int``, ``number`` (finite), ``bool``, ``choice`` (one of ``choices``), ``int_list`` (list of
    integers in the range), ``str_list``, ``number_or_list`` (a number or a non-empty list of numbers),
    ``mapping`` (an object, e.g. greedy's ``candidate_params``) or ``method`` (a declared method name).
    ``nullable``: ``null``/``None`` is allowed (it means "derived", see the doc). ``stage_only``: read by the
    explain stage (:func:`xaipipe.explain.stage.method_params`), never handed to the explainer.
    """

    kind: str
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple = ()
    nullable: bool = False
    ignore_case: bool = False
    stage_only: bool = False


def _int(default, doc, minimum=None, maximum=None, **kw) -> Param:
    return Param("int", default, doc, minimum=minimum, maximum=maximum, **kw)


def _num(default, doc, minimum=None, maximum=None, **kw) -> Param:
    return Param("number", default, doc, minimum=minimum, maximum=maximum, **kw)


def _choice(default, doc, choices, **kw) -> Param:
    return Param("choice", default, doc, choices=tuple(choices), **kw)


_SEED_IGNORED = _int(0, "accepted and ignored (the method is deterministic)", nullable=True)
_STABILIZER = _num(1e-6, "added to every denominator with its sign (Zennit's stabilizer)", 0,
                   exclusive_minimum=True)

#: RDE's presets (xaipipe/explain/rde.py, "Scale"): the values its ``null`` parameters take. ``default``
#: finds planted words; ``report`` is the report's literal method (sections 3.1-3.3).
RDE_PRESETS: dict[str, dict[str, Any]] = {
    "default": {"noise_dist": "embedding", "neutral_draw": "position", "penalty": "mean", "lam_relative": True,
                "lam": 0.3, "l4_lam": 0.3},
    "report": {"noise_dist": "standard", "neutral_draw": "word", "penalty": "sum", "lam_relative": False,
               "lam": 0.1, "l4_lam": 0.0},
}

#: method name -> parameter name -> declaration.
METHOD_PARAMS: dict[str, dict[str, Param]] = {
    "sensitivity": {"seed": _SEED_IGNORED},
    "gradient_x_input": {"seed": _SEED_IGNORED},
    "integrated_gradients": {
        "n_steps": _int(50, "quadrature points (Gauss-Legendre)", 1),
        "internal_batch_size": _int(128, "rows (documents x steps) per forward pass, at least the documents of "
                                         "a batch; null: all at once", 1, nullable=True),
        "seed": _SEED_IGNORED,
    },
    "occlusion": {
        "perturbations_per_eval": _int(32, "ablated positions per forward pass (direct path)", 1),
        "seed": _SEED_IGNORED,
    },
    "lrp_epsilon": {
        "epsilon": _num(0.01, "epsilon of the epsilon rule on every layer", 0, exclusive_minimum=True),
        "seed": _SEED_IGNORED,
    },
    "lrp_zplus": {"stabilizer": _STABILIZER, "seed": _SEED_IGNORED},
    "lrp_alpha2beta1": {"stabilizer": _STABILIZER, "seed": _SEED_IGNORED},
    "lrp_w2": {"stabilizer": _STABILIZER, "seed": _SEED_IGNORED},
    "lrp_zbox": {
        "stabilizer": _STABILIZER,
        "low": Param("number_or_list", None, "lower box bound of an embedding (a number or one per dimension); "
                                             "null: the embedding matrix's per-dimension minimum", nullable=True),
        "high": Param("number_or_list", None, "upper box bound (a number or one per dimension); null: the "
                                              "per-dimension maximum", nullable=True),
        "seed": _SEED_IGNORED,
    },
    "greedy": {
        "k": _int(10, "number of words picked", 1),
        "candidates": _choice(None, "all (vanilla greedy) or top (the n_candidates most relevant words of "
                                    "candidate_method); null: top when candidate_method is given",
                              ("all", "top"), nullable=True),
        "n_candidates": _int(20, "words kept as candidates with candidates: top", 1),
        "candidate_method": Param("method", None, "registered method that ranks the candidates (not greedy)",
                                  nullable=True),
        "candidate_params": Param("mapping", None, "parameters of candidate_method (checked against its "
                                                   "declaration)", nullable=True),
        "objective": _choice("logit", "logit (Algorithm 1) or softmax (log-odds of the target class)",
                             ("logit", "softmax"), ignore_case=True),
        "max_batch": _int(128, "candidate-deleted copies per forward pass (direct path)", 1),
        "tie_tol": _num(1e-6, "relative tolerance under which step values count as ties", 0),
        "batch_docs": _int(None, "documents per attribute chunk; null: the class default (16)", 1, nullable=True),
        "seed": _int(None, "handed on to candidate_method when candidate_params sets none", nullable=True),
    },
    "lime": {
        "num_samples": _int(1000, "perturbed samples per document (sample 0 is the document itself)", 2),
        "kernel_width": _num(25.0, "width of LIME's exponential kernel on the cosine distance x 100", 0,
                             exclusive_minimum=True),
        "seed": _int(0, "seed of the neighbourhood sampling (null: fresh entropy)", nullable=True),
        "batch_size": _int(128, "perturbed documents per forward pass (fewer for long documents: memory)", 1),
        "output": _choice("prob", "explained output: softmax probability or logit of the target", ("prob", "logit")),
        "num_features": _int(None, "keep the K words chosen by lasso_path, all others 0; null: every word", 1,
                             nullable=True),
        "max_words": _int(10_000, "longest document explained: LIME needs about 40 bytes x num_samples x words "
                                  "(400 MB at 1000 samples and 10,000 words); longer ones are refused", 1),
    },
    "shap": {
        "algorithm": _choice("partition", "partition (Owen values over a span tree) or permutation",
                             ("partition", "permutation")),
        "max_evals": _int(500, "model evaluations per document (permutation: at least 2 x words + 1)", 3),
        "batch_size": _int(128, "masked documents per model call", 1),
        "seed": _int(0, "seed of the permutations (null: fresh entropy)", nullable=True),
        "output": _choice("prob", "explained output: softmax probability or logit of the target", ("prob", "logit")),
    },
    # from _DEFAULTS in xaipipe/explain/rde.py (its owner switches rde.py to read this declaration)
    "rde": {
        "preset": _choice("default", "where the defaults of noise_dist, neutral_draw, penalty, lam_relative, lam "
                                     "and l4_lam come from (RDE_PRESETS): default (finds planted words) or report "
                                     "(the report's literal settings)", tuple(RDE_PRESETS), ignore_case=True),
        "loss": _choice("l2", "distortion: l2 (all logits), l1 (target logit) or l4 (signed, [-1, 1] output)",
                        ("l1", "l2", "l4"), ignore_case=True),
        "lam": _num(None, "lambda of the rate term; null: the preset's (default: 0.3 relative; report: 0.1, "
                          "0 for l4)", 0, nullable=True),
        "lam_relative": Param("bool", None, "lambda in units of the distortion of deleting every word; null: "
                                            "the preset's", nullable=True),
        "penalty": _choice(None, "rate term: mean (lambda x mean s; l4: mean |2s-1|) or sum (lambda x sum s); "
                                 "null: the preset's", ("mean", "sum"), nullable=True, ignore_case=True),
        "lr": _num(0.05, "Adam learning rate", 0, exclusive_minimum=True),
        "steps": _int(200, "Adam steps", 1),
        "batch": _int(16, "noise draws per step (neutral_draw word: the number of neutral words)", 1),
        "init": _num(0.5, "initial value of every mask entry", 0, 1),
        "noise": _choice("gaussian", "gaussian (from noise_dist) or neutral (neutral words' vectors)",
                         ("gaussian", "neutral"), ignore_case=True),
        "noise_dist": _choice(None, "Gaussian noise: embedding (mean and covariance of the word vectors) or "
                                    "standard (N(0,1) clipped to [-1,1]); null: the preset's",
                              ("embedding", "standard"), nullable=True, ignore_case=True),
        "neutral_draw": _choice(None, "neutral noise: position (a random neutral word per deleted position and "
                                      "draw) or word (draw b = neutral word b everywhere); null: the preset's",
                                ("position", "word"), nullable=True, ignore_case=True),
        "neutral_ids": Param("int_list", None, "vocabulary ids of the neutral words (the pipeline derives them "
                                               "from neutral_words)", minimum=0, nullable=True),
        "neutral_words": Param("str_list", None, "neutral words for noise: neutral (null: the 64 built-in "
                                                 "prepositions and articles)", nullable=True, stage_only=True),
        "noise_pool": _num(1.0, "Gaussian and per-position neutral noise: draws are windows of a pool of "
                                "(1 + noise_pool) x length vectors per document (the fast path projects it "
                                "once); 0: fresh draws every step through full forwards", 0),
        "seed": _int(0, "seed of the noise", 0),
        "adaptive": Param("bool", None, "re-optimise with another lambda until the mean relevance is in "
                                        "[target_low, target_high]; null: true with fixed_from", nullable=True),
        "lam_factor": _num(2.0, "adaptive lambda: factor per round before the range is bracketed", 1,
                           exclusive_minimum=True),
        "target_low": _num(0.1, "adaptive lambda: lowest accepted mean relevance", 0, 1),
        "target_high": _num(0.3, "adaptive lambda: highest accepted mean relevance", 0, 1),
        "max_rounds": _int(8, "adaptive lambda: most optimisations", 1),
        "fixed_from": _choice(None, "l4: the combined method (an L4 run fixes all but the top keep_fraction words)",
                              ("l4",), nullable=True),
        "fix_value": _num(0.0, "fixed_from: value of the fixed words, 1 (RDE-L1) or 0 (RDE-L1R)", 0, 1),
        "keep_fraction": _num(1.0 / 3.0, "fixed_from: share of words left free (rounded up)", 0, 1,
                              exclusive_minimum=True),
        "l4_lam": _num(None, "fixed_from: lambda of the L4 run; null: the preset's", 0, nullable=True),
        "l4_init": _num(0.5, "fixed_from: initial mask of the L4 run", 0, 1),
        "max_tokens": _int(2 ** 17, "memory bound: documents x draws x words optimised together", 1),
        "batch_docs": _int(None, "documents per attribute chunk; null: the class default (16)", 1, nullable=True),
    },
}


def _rde_rules(p: dict, given: Mapping) -> list[tuple[str, str]]:
    """RDE's checks that involve several parameters (as in ``RDE.__init__``): ``(parameter, problem)``."""
    out = []
    fixed = p["fixed_from"] is not None
    loss = str(p["loss"]).lower() if "loss" in given or not fixed else "l1"
    if fixed and loss == "l4":
        out.append(("loss", f"loss = {_show(p['loss'])} must be l1 or l2 with fixed_from: l4 (its second stage)"))
    if fixed and float(p["fix_value"]) not in (0.0, 1.0):
        out.append(("fix_value", f"fix_value = {_show(p['fix_value'])} must be 0 (RDE-L1R) or 1 (RDE-L1) with "
                                 f"fixed_from: l4"))
    adaptive = p["adaptive"] if p["adaptive"] is not None else fixed
    preset = RDE_PRESETS[str(p["preset"]).lower()]
    lam = p["lam"] if p["lam"] is not None else (preset["l4_lam"] if loss == "l4" else preset["lam"])
    if adaptive and not lam > 0:
        out.append(("lam", f"lam = {_show(lam)} must be > 0 with adaptive lambda (the search multiplies it)"))
    if adaptive and not float(p["target_low"]) <= float(p["target_high"]):
        out.append(("target_low", f"target_low = {_show(p['target_low'])} must not exceed target_high = "
                                  f"{_show(p['target_high'])}"))
    return out


def _greedy_rules(p: dict, given: Mapping) -> list[tuple[str, str]]:
    if p["candidates"] == "top" and not p["candidate_method"]:
        return [("candidates", "candidates = \"top\" needs candidate_method (the method that ranks the candidates)")]
    return []


def _zbox_rules(p: dict, given: Mapping) -> list[tuple[str, str]]:
    low, high = p["low"], p["high"]
    if _is_num(low) and _is_num(high) and low > high:
        return [("low", f"low must not exceed high (low = {_show(low)}, high = {_show(high)})")]
    return []


#: checks across parameters: ``fn(parameters merged with the defaults, parameters given)`` -> a list of
#: ``(parameter, message)``
RULES: dict[str, Callable[[dict, Mapping], list[tuple[str, str]]]] = {
    "rde": _rde_rules, "greedy": _greedy_rules, "lrp_zbox": _zbox_rules,
}


def declared_methods() -> list[str]:
    return sorted(METHOD_PARAMS)


def defaults(method: str, *, stage: bool = False) -> dict[str, Any]:
    """A fresh dict of ``method``'s defaults (``stage``: include the stage-only parameters)."""
    return {k: copy.deepcopy(p.default) for k, p in _declaration(method).items() if stage or not p.stage_only}


def _declaration(method: str) -> dict[str, Param]:
    try:
        return METHOD_PARAMS[method]
    except KeyError:
        raise ConfigError(f"unknown explanation method {method!r}; known: {', '.join(declared_methods())}") from None


def suggest(name: str, known) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or ``''``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)


def _range(p: Param) -> str:
    lo = hi = ""
    if p.minimum is not None:
        lo = f"{'>' if p.exclusive_minimum else '>='} {p.minimum:g}"
    if p.maximum is not None:
        hi = f"{'<' if p.exclusive_maximum else '<='} {p.maximum:g}"
    if lo and hi and not p.exclusive_minimum and not p.exclusive_maximum:
        return f"in [{p.minimum:g}, {p.maximum:g}]"
    return " and ".join(x for x in (lo, hi) if x)


def describe(p: Param) -> str:
    """What ``p`` allows, e.g. ``an integer >= 1``, ``one of "prob", "logit"``, ``a number > 0 or null``."""
    rng = _range(p)
    if p.kind == "int":
        text = f"an integer {rng}".strip()
    elif p.kind == "number":
        text = f"a number {rng}".strip()
    elif p.kind == "bool":
        text = "true or false"
    elif p.kind == "choice":
        text = "one of " + ", ".join(_show(c) for c in p.choices if c is not None)
    elif p.kind == "int_list":
        text = f"a list of integers {rng}".strip()
    elif p.kind == "str_list":
        text = "a list of words"
    elif p.kind == "number_or_list":
        text = "a number or a non-empty list of numbers"
    elif p.kind == "mapping":
        text = "an object of parameters"
    elif p.kind == "method":
        text = "a registered explanation method: " + ", ".join(m for m in declared_methods() if m != "greedy")
    else:  # pragma: no cover
        raise AssertionError(p.kind)
    return text + (" or null" if p.nullable else "")


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, Integral):
        return True
    return isinstance(v, Real) and math.isfinite(float(v)) and float(v) == int(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _in_range(p: Param, v: float) -> bool:
    if p.minimum is not None and (v <= p.minimum if p.exclusive_minimum else v < p.minimum):
        return False
    if p.maximum is not None and (v >= p.maximum if p.exclusive_maximum else v > p.maximum):
        return False
    return True


def _valid(p: Param, v: Any, extra_methods: frozenset = frozenset()) -> bool:
    if v is None:
        return p.nullable
    if p.kind == "int":
        return _is_int(v) and _in_range(p, float(v))
    if p.kind == "number":
        return _is_num(v) and _in_range(p, float(v))
    if p.kind == "bool":
        return isinstance(v, bool)
    if p.kind == "choice":
        if p.ignore_case and isinstance(v, str):
            return v.lower() in p.choices
        return isinstance(v, str) and v in p.choices
    if p.kind == "int_list":
        return isinstance(v, (list, tuple)) and all(_is_int(x) and _in_range(p, float(x)) for x in v)
    if p.kind == "str_list":
        return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)
    if p.kind == "number_or_list":
        if isinstance(v, (list, tuple)):
            return len(v) > 0 and all(_is_num(x) for x in v)
        return _is_num(v)
    if p.kind == "mapping":
        return isinstance(v, Mapping)
    if p.kind == "method":
        return isinstance(v, str) and v != "greedy" and (v in METHOD_PARAMS or v in extra_methods)
    raise AssertionError(p.kind)  # pragma: no cover


def check_params(method: str, params: Mapping[str, Any], prefix: str = "", *, stage: bool = True,
                 extra_methods=()) -> None:
    """Raise :class:`ConfigError` on the first parameter of ``params`` that ``method`` does not declare or
    whose value its declaration does not allow; message ``{prefix}{name} = {value} must be ...``.

    ``stage``: the parameters come from a configured variant (stage-only ones such as ``neutral_words``
    are allowed); ``False`` for what reaches an explainer directly (greedy's ``candidate_params``).
    ``extra_methods``: names registered at run time without a declaration (helpers of the tests, ``_name``),
    accepted as greedy's ``candidate_method`` (their parameters are not checked).
    """
    if not isinstance(params, Mapping):
        raise ConfigError(f"{prefix.rstrip(': .') or 'parameters'} must be an object of parameters "
                          f"(name: value), not {_show(params)}")
    decl = _declaration(method)
    known = {k for k, p in decl.items() if stage or not p.stage_only}
    for name, value in params.items():
        if name not in known:
            hint = suggest(name, known)
            if name == "method":
                hint = " (the method is named once, outside its parameters)"
            raise ConfigError(f"{prefix}{name} is an unknown parameter of {method}{hint}; known: "
                              f"{', '.join(sorted(known)) or 'none'}")
        p = decl[name]
        if not _valid(p, value, frozenset(extra_methods)):
            raise ConfigError(f"{prefix}{name} = {_show(value)} must be {describe(p)}")
    merged = {**defaults(method, stage=True), **dict(params)}
    rules = RULES.get(method)
    for _name, problem in (rules(merged, params) if rules else []):
        raise ConfigError(f"{prefix}{problem}")
    cand = merged.get("candidate_method") if method == "greedy" else None
    if cand and cand in METHOD_PARAMS and params.get("candidate_params") is not None:
        check_params(cand, params["candidate_params"], f"{prefix}candidate_params.", stage=False)


def check_variant(dataset: str, variant: str, cfg: Mapping[str, Any]) -> None:
    """Check one configured variant ``<dataset>.explain.methods.<variant>`` (``{method: NAME, **params}``)
    before any job; every problem is one line starting ``config: <dataset>.explain.methods.<variant>``."""
    where = f"config: {dataset}.explain.methods.{variant}"
    if not isinstance(cfg, Mapping) or "method" not in cfg:
        raise ConfigError(f"{where} needs 'method: NAME' (a registered explanation method; known: "
                          f"{', '.join(declared_methods())})")
    method = cfg["method"]
    if method not in METHOD_PARAMS:
        raise ConfigError(f"{where}.method = {method!r} is not a known explanation method"
                          f"{suggest(method, METHOD_PARAMS)}; known: {', '.join(declared_methods())}")
    check_params(method, {k: v for k, v in cfg.items() if k != "method"}, f"{where}.")
