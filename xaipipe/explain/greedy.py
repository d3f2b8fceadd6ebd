"""Greedy word deletion (report section 5, Algorithm 1; variants of sections 6.5 and 9).

Algorithm 1: ``h`` = the target class (by default ``argmax Φ(X)``); ``k`` times, delete (replace by the
zero vector) the not yet deleted word whose deletion gives the lowest ``Φ(X')_h``, keeping the earlier
deletions. Complexity ``O(k · N)`` forward passes ("10·n·n").

Parameters (config ``params``; types, ranges and defaults are declared in :mod:`xaipipe.method_params`):

``k``                 number of words picked (10). ``k`` larger than the number of candidates: every
                      candidate is picked.
``candidates``        ``all`` (vanilla greedy, "GN") or ``top``: only the ``n_candidates`` (20) words with the
                      highest relevance under another registered method ``candidate_method`` (built with
                      :func:`get_explainer` on the same model with ``candidate_params``; "GL2" = ``rde``
                      with loss l2, "GL4" = ``rde`` with loss l4, "G-LRP" = an LRP method; section 5 and 6.5).
                      Giving ``candidate_method`` implies ``top``. Ties in the candidate relevance: lower
                      position first.
``objective``         ``logit`` (Algorithm 1: ``Φ(X')_h``) or ``softmax`` (section 9, "further thoughts":
                      compare the probability of ``h`` after the softmax). The probability is compared through
                      its log-odds ``log(p_h / (1 - p_h)) = -logsumexp_{i≠h}(Φ_i - Φ_h)``, which is strictly
                      increasing in ``p_h`` (same picks) but does not saturate at ``p_h ≈ 1`` in float32.
``max_batch``         at most this many candidate-deleted copies per forward pass (128).
``seed``              not used by greedy itself (it is deterministic); handed on to the candidate method
                      when that accepts one and ``candidate_params`` sets none.
``tie_tol``           values within ``tie_tol · max(1, |min|)`` of the step's minimum count as ties, broken by
                      the lowest position (Algorithm 1's strict ``<`` keeps the first minimum; the tolerance
                      makes the picks independent of float rounding between batch shapes). Default 1e-6.

**Relevance output:** the ``r``-th pick (``r = 0`` first) gets ``k - r`` -- first pick ``k``, then
``k - 1``, ... -- every other word 0. When fewer than ``k`` words can be picked the values still start
at ``k`` (so a value means the same pick rank in every document). The greedy relevance is an order, not
a magnitude (section 6.5.1). ``extra`` holds ``order`` (positions in pick order) and ``values`` (the
objective after each deletion), and ``candidates`` when restricted.

**Fast path:** for TextCNN models (:func:`~xaipipe.models.fast.use_fast_path`) every step evaluates all
candidates of a document from the first layer's tap projections in ``O(N · K · C)`` (:func:`greedy_fast`),
about two orders of magnitude less than a forward per candidate; the picks are the same.

**Vectorised (direct path, other models):** every step is one batched forward pass over all remaining candidates of *all* documents
of the batch (each copy = the current document with one more word zeroed; chunked by ``max_batch``),
never a Python loop over words. :func:`greedy_naive` is the looping reference.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import XaipipeError
from ..models.fast import use_fast_path
from .base import Explainer, get_explainer, model_device, pad_embedded, register, resolve_params

OBJECTIVES = ("logit", "softmax")

def objective_values(logits: torch.Tensor, target: torch.Tensor, objective: str) -> torch.Tensor:
    """``(P, C)`` logits, ``(P,)`` targets -> ``(P,)`` values to minimise."""
    z_h = logits.gather(1, target.view(-1, 1)).squeeze(1)
    if objective == "logit":
        return z_h
    if objective == "softmax":  # log-odds of p_h: monotone in p_h
        others = (logits - z_h[:, None]).scatter(1, target.view(-1, 1), float("-inf"))
        return -torch.logsumexp(others, dim=1)
    raise XaipipeError(f"greedy: unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")


@torch.no_grad()
def greedy_batched(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor,
                   allowed: torch.Tensor, k: int, objective: str = "logit", max_batch: int = 128,
                   tie_tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 for a padded batch ``x`` ``(D, N, E)``; ``allowed`` ``(D, N)`` bool = candidate words.

    Returns ``picks`` ``(D, k)`` (positions in pick order, -1 when no candidate was left) and ``values``
    ``(D, k)`` (objective after each deletion, NaN where no pick)."""
    d, n, _ = x.shape
    dev = x.device
    x = x.clone()
    pos = torch.arange(n, device=dev)
    remaining = allowed & (pos[None, :] < lengths[:, None])
    picks = torch.full((d, k), -1, dtype=torch.long, device=dev)
    vals = torch.full((d, k), float("nan"), dtype=x.dtype, device=dev)
    for step in range(k):
        pairs = remaining.nonzero()  # (P, 2), row-major: by document, then position
        p = pairs.shape[0]
        if p == 0:
            break
        values = torch.empty(p, dtype=x.dtype, device=dev)
        for c0 in range(0, p, max_batch):
            di, wi = pairs[c0:c0 + max_batch, 0], pairs[c0:c0 + max_batch, 1]
            width = int(lengths[di].max())
            xc = x[di, :width].clone()
            xc[torch.arange(len(di), device=dev), wi] = 0.0
            values[c0:c0 + len(di)] = objective_values(model.forward_embedded(xc, lengths[di]), target[di],
                                                       objective)
        di, wi = pairs[:, 0], pairs[:, 1]
        dmin = torch.full((d,), float("inf"), dtype=x.dtype, device=dev).scatter_reduce(0, di, values, "amin")
        tol = tie_tol * dmin.abs().clamp(min=1.0)
        tie = values <= (dmin + tol)[di]
        pick = torch.full((d,), n, dtype=torch.long, device=dev).scatter_reduce(
            0, di, torch.where(tie, wi, torch.full_like(wi, n)), "amin")
        grid = torch.full((d, n), float("nan"), dtype=x.dtype, device=dev)
        grid[di, wi] = values
        done = (pick < n).nonzero().squeeze(1)
        pp = pick[done]
        picks[done, step] = pp
        vals[done, step] = grid[done, pp]
        x[done, pp] = 0.0
        remaining[done, pp] = False
    return picks, vals


@torch.no_grad()
def greedy_fast(model: nn.Module, x: torch.Tensor, target: int, allowed: torch.Tensor, k: int,
                objective: str = "logit", tie_tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 for one unpadded document ``x`` ``(L, E)`` through the first-layer fast path
    (:mod:`xaipipe.models.fast`): a step evaluates every candidate deletion in ``O(L · K · C)`` (only the
    ``K`` windows containing the word change), then subtracts the picked word's projections from the
    current convolution. Same picks (same tie rule) as :func:`greedy_batched`; ``allowed`` ``(L,)``.
    Returns ``picks`` ``(k,)`` and ``values`` ``(k,)`` like :func:`greedy_batched` for one document."""
    from ..models.fast import DocumentProjection, greedy_step_values

    proj = DocumentProjection(model, x)
    z = proj.z_full.clone()
    remaining = allowed[: proj.length].clone()
    picks = torch.full((k,), -1, dtype=torch.long, device=x.device)
    vals = torch.full((k,), float("nan"), dtype=x.dtype, device=x.device)
    tgt = torch.tensor([int(target)], device=x.device)
    taps = torch.arange(proj.k, device=x.device)
    for step in range(k):
        cand = remaining.nonzero().squeeze(1)
        if cand.numel() == 0:
            break
        pooled = greedy_step_values(proj, z, cand)
        logits = model.classifier(model.dropout_in(torch.relu(pooled)))
        values = objective_values(logits, tgt.expand(len(cand)), objective)
        vmin = values.min()
        tol = tie_tol * vmin.abs().clamp(min=1.0)
        first = int((values <= vmin + tol).nonzero()[0, 0])  # candidates are sorted: lowest position
        j = int(cand[first])
        picks[step], vals[step] = j, values[first]
        win = j - taps
        ok = (win >= 0) & (win < proj.t)
        z[win[ok]] -= proj.p[j, taps[ok]]
        remaining[j] = False
    return picks, vals


@torch.no_grad()
def greedy_naive(model: nn.Module, doc_ids: Sequence[int] | np.ndarray, target: int, k: int,
                 objective: str = "logit", candidates: Sequence[int] | None = None,
                 tie_tol: float = 1e-6) -> list[int]:
    """Reference implementation of Algorithm 1 with explicit loops (one unpadded forward per candidate).
    Same tie rule as the batched version. Returns the picked positions in order."""
    device = model_device(model)
    ids = torch.as_tensor(np.asarray(doc_ids, dtype=np.int64), device=device)[None, :]
    x = model.embed(ids)
    n = x.shape[1]
    pool = list(range(n)) if candidates is None else sorted({int(c) for c in candidates if 0 <= int(c) < n})
    tgt = torch.tensor([int(target)], device=device)
    rel: list[int] = []
    for _ in range(min(k, len(pool))):
        vals = []
        for j in pool:
            if j in rel:
                continue
            xd = x.clone()
            xd[0, j] = 0.0
            vals.append((j, float(objective_values(model.forward_embedded(xd), tgt, objective)[0])))
        min_val = min(v for _, v in vals)
        tol = tie_tol * max(1.0, abs(min_val))
        min_ind = next(j for j, v in vals if v <= min_val + tol)
        x[0, min_ind] = 0.0
        rel.append(min_ind)
    return rel


@register("greedy")
class Greedy(Explainer):
    """Greedy deletion (Algorithm 1); see the module docstring for parameters and output."""

    def __init__(self, model: nn.Module, **params: Any):
        super().__init__(model, **params)
        p = resolve_params("greedy", params)  # declared in xaipipe.method_params
        self.k = int(p["k"])
        self.n_candidates = int(p["n_candidates"])
        self.objective = str(p["objective"]).lower()
        self.max_batch = int(p["max_batch"])
        self.tie_tol = float(p["tie_tol"])
        if self.k < 1 or self.n_candidates < 1 or self.max_batch < 1 or self.tie_tol < 0:
            raise XaipipeError("greedy: need k >= 1, n_candidates >= 1, max_batch >= 1 and tie_tol >= 0")
        if self.objective not in OBJECTIVES:
            raise XaipipeError(f"greedy: unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}")
        mode = p["candidates"] or ("top" if p["candidate_method"] else "all")
        if mode not in ("all", "top"):
            raise XaipipeError(f"greedy: candidates must be 'all' or 'top', not {mode!r}")
        self.candidate_explainer: Explainer | None = None
        if mode == "top":
            if not p["candidate_method"]:
                raise XaipipeError("greedy: candidates 'top' needs candidate_method (a registered method)")
            if p["candidate_method"] == self.name:
                raise XaipipeError("greedy: candidate_method cannot be greedy itself")
            cparams = dict(p["candidate_params"] or {})
            if p["seed"] is not None and "seed" not in cparams:
                try:  # hand the seed on to a stochastic candidate method (rde) ...
                    self.candidate_explainer = get_explainer(str(p["candidate_method"]), model,
                                                             **cparams, seed=p["seed"])
                except (XaipipeError, TypeError):  # ... unless it takes no seed
                    pass
            if self.candidate_explainer is None:
                self.candidate_explainer = get_explainer(str(p["candidate_method"]), model, **cparams)
        if p["batch_docs"] is not None:
            self.batch_docs = int(p["batch_docs"])

    def _attribute_batch(self, docs: list[np.ndarray], target: list[int]):
        device = model_device(self.model)
        order = sorted(range(len(docs)), key=lambda i: len(docs[i]))  # similar widths share a forward chunk
        sdocs, stgt = [docs[i] for i in order], [target[i] for i in order]
        x, lengths = pad_embedded(self.model, sdocs, device)
        n = x.shape[1]
        allowed = torch.ones(len(sdocs), n, dtype=torch.bool, device=device)
        cands: list[list[int] | None] = [None] * len(sdocs)
        if self.candidate_explainer is not None:
            allowed[:] = False
            for i, expl in enumerate(self.candidate_explainer.attribute(sdocs, stgt)):
                top = np.argsort(-expl.relevance, kind="stable")[: self.n_candidates]
                cands[i] = sorted(int(j) for j in top)
                allowed[i, top] = True
        if use_fast_path(self.model):
            pv = [greedy_fast(self.model, x[i, : len(sdocs[i])], stgt[i], allowed[i], self.k, self.objective,
                              self.tie_tol) for i in range(len(sdocs))]
            picks = torch.stack([p for p, _ in pv]).cpu().numpy()
            vals = torch.stack([v for _, v in pv]).cpu().numpy()
        else:
            picks, vals = greedy_batched(self.model, x, lengths, torch.as_tensor(stgt, device=device), allowed,
                                         self.k, self.objective, self.max_batch, self.tie_tol)
            picks, vals = picks.cpu().numpy(), vals.cpu().numpy()
        out: list = [None] * len(docs)
        for i, doc in enumerate(sdocs):
            chosen = [int(j) for j in picks[i] if j >= 0]
            rel = np.zeros(len(doc))
            rel[chosen] = self.k - np.arange(len(chosen))
            extra = {"order": chosen, "values": [float(v) for v in vals[i, : len(chosen)]]}
            if cands[i] is not None:
                extra["candidates"] = cands[i]
            out[order[i]] = (rel, extra)
        return out
