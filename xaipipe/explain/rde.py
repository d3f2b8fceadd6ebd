"""Rate-distortion explanations (RDE) for text (report sections 3, 6.1-6.4; MacDonald et al. 2019).

Method (report section 3.1). A document is ``X`` (``N x E`` word vectors), ``Φ`` the frozen classifier's
pre-softmax outputs. A relevance ``s ∈ [0, 1]^N`` (one value per word, ``S = diag(s)``) keeps a word
(``s = 1``) or replaces it by noise ``G`` (``s = 0``): the perturbed input is ``SX + (I - S)G``. ``s`` is
found by Adam on, for a batch of ``B`` noise draws (section 3.2; ``h`` = the target class, by default the
predicted one, i.e. ``argmax Φ(X)``)::

    l2:  0.5 ||Φ(SX + (I-S)G) - Φ(X)||²                                   + λ||s||₁   (3.2.1, original RDE)
    l1:  0.5 (Φ(SX + (I-S)G)_h - Φ(X)_h)²                                 + λ||s||₁   (3.2.2)
    l4:  Σ_{i≠h} (Φ(SX+(I-S)G)_i - Φ(X)_i) + Φ(X)_h - Φ(SX+(I-S)G)_h       + λ||s||₁   (3.2.3)

the distortion term averaged over the ``B`` draws. Parameters (config ``params``):

``loss``            ``l2`` (default), ``l1`` or ``l4``.
``lam``             λ; default 0.1 for l1/l2 and 0 for l4 (section 6.3: "no problem of setting any λ").
``lr``, ``steps``   Adam learning rate (0.05) and number of steps (200).
``batch``           ``B`` noise draws per step (16; ignored for neutral noise, see below).
``init``            initial value of every ``s`` (0.5).
``noise``           ``gaussian``: ``G`` i.i.d. N(0, 1) clipped to [-1, 1] (section 3.1), fresh draws every
                    step; ``neutral``: embeddings of neutral words (section 3.2, "64 prepositions and
                    articles ... the batch size is also fixed at 64"), vocabulary ids in ``neutral_ids``.
                    **Semantics:** draw ``b`` uses the vector of neutral word ``b`` at *every* position, so
                    ``(I-S)G`` fills each deleted fraction of each word with that one neutral word; the
                    batch is exactly the ``len(neutral_ids)`` words, the same at every step (no randomness).
                    For TextCNN models this noise runs through the first-layer fast path
                    (:func:`rde_objective_fast`, ~10x cheaper per step); Gaussian noise stays a full
                    forward/backward over all documents and draws of a batch (one batched pass per step).
``seed``            seed of the Gaussian noise (0). Each document has its *own* generator seeded with
                    ``seed``, so a document's explanation does not depend on which documents share its
                    batch, nor on the batch order (documents are explained in batches for speed only).
``adaptive``        re-optimise with another λ until the mean relevance lies in
                    ``[target_low, target_high]`` (section 3.3 "adaptive learning", 6.1, 6.2): too high ->
                    λ·``lam_factor``, too low -> λ/``lam_factor``; once the range is bracketed the next λ is
                    the geometric mean of the bracket (plain multiply/divide can oscillate forever around a
                    narrow range). At most ``max_rounds`` optimisations (8); each restarts from ``init`` with
                    the same noise. The ``extra`` dict reports ``lam`` (of the returned map), ``rounds``,
                    ``mean_relevance`` and ``in_range``; when the range is not reached the map whose mean is
                    closest to it is returned, with ``in_range: false``. Defaults: range [0.1, 0.3],
                    ``lam_factor`` 2.
``fixed_from``      ``l4``: the combined method of section 6.4. First an L4 run (``l4_lam`` 0, ``l4_init``
                    0.5, same ``steps``/``lr``/``batch``/``noise``); the top ``keep_fraction`` (one third,
                    rounded up, ties by position) of the words by L4 relevance stay free, every other word's
                    ``s`` is fixed at ``fix_value`` -- 1: "RDE-L1", 0: "RDE-L1R" -- and ``loss`` (default
                    ``l1``) is optimised over the free words only, with adaptive λ (``adaptive`` defaults
                    to true here). As in the report the reference is ``Φ(X)`` (all relevances 1); ``||s||₁``
                    and the adaptive mean run over the free words only. Output: the final ``s`` (fixed words
                    at ``fix_value``); ``extra["n_free"]`` counts the free words.
``max_tokens``      memory bound: documents optimised together satisfy ``docs · B · N_max ≤ max_tokens``
                    (``2**17``; at least one document). ``batch_docs``: documents per ``attribute`` chunk.

Design choices:

* **Mask parameterisation: projected gradient.** ``s`` itself is the optimised parameter and is clamped
  to [0, 1] after every Adam step (the report constrains ``s`` to [0, 1] and optimises it directly; a
  sigmoid would never reach exactly 0 or 1 and would turn λ||s||₁ into a vanishing push). Since ``s ≥ 0``,
  ``||s||₁ = Σ s``.
* **l4 output rescaled to [-1, 1]** (section 3.3, "scaling the relevance values to [-1, 1]"): relevance
  ``= 2s - 1``. The map is affine and fixed (not min-max per document), so the "neutral" value 0.5 of
  section 6.3 / Figure 10 (a word that L4 neither keeps nor deletes stays at ``init`` = 0.5) becomes 0,
  kept words (s = 1) become +1 and words that speak against ``h`` (s = 0) become -1.
* **Vectorised:** documents are zero-padded; the perturbed inputs of all documents × all ``B`` draws are
  one ``(docs·B, N_max, E)`` tensor -> one forward and one backward per step. Padding positions are
  forced to the zero vector (exactly the padding of the unpadded model, so logits are unchanged) and
  their ``s`` is multiplied by 0: they get no gradient, no λ penalty and are not counted in any mean.
  Each document's loss depends only on its own ``s`` and Adam is element-wise, so a batch gives the same
  result as explaining each document alone (up to float rounding).
* The classifier is frozen: gradients are taken with :func:`torch.autograd.grad` w.r.t. ``s`` only, so the
  model's ``.grad`` fields are never touched.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import XaipipeError
from ..models.fast import DocumentProjection, use_fast_path
from .base import Explainer, model_device, pad_embedded, register, resolve_params

LOSSES = ("l1", "l2", "l4")
NOISES = ("gaussian", "neutral")

_DEFAULTS: dict[str, Any] = {
    "loss": "l2", "lam": None, "lr": 0.05, "steps": 200, "batch": 16, "init": 0.5,
    "noise": "gaussian", "neutral_ids": None, "seed": 0,
    "adaptive": None, "lam_factor": 2.0, "target_low": 0.1, "target_high": 0.3, "max_rounds": 8,
    "fixed_from": None, "fix_value": 0.0, "keep_fraction": 1.0 / 3.0, "l4_lam": 0.0, "l4_init": 0.5,
    "max_tokens": 2 ** 17, "batch_docs": None,
}


def distortion(out: torch.Tensor, ref: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Distortion term of ``loss`` for outputs ``out`` ``(D, B, C)`` against ``ref = Φ(X)`` ``(D, C)``,
    target classes ``(D,)`` -> ``(D, B)``."""
    diff = out - ref[:, None, :]
    diff_h = diff.gather(2, target.view(-1, 1, 1).expand(-1, diff.shape[1], 1)).squeeze(2)
    if loss == "l2":
        return 0.5 * (diff ** 2).sum(2)
    if loss == "l1":
        return 0.5 * diff_h ** 2
    if loss == "l4":  # Σ_{i≠h} diff_i - diff_h = Σ_i diff_i - 2 diff_h
        return diff.sum(2) - 2.0 * diff_h
    raise XaipipeError(f"rde: unknown loss {loss!r}; known: {', '.join(LOSSES)}")


def rde_objective(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, s: torch.Tensor,
                  noise: torch.Tensor, ref: torch.Tensor, target: torch.Tensor, lam: torch.Tensor,
                  penalised: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-document loss ``(D,)``: distortion of ``SX + (I-S)G`` averaged over the draws + λ Σ s.

    ``x`` ``(D, N, E)`` padded documents, ``s`` ``(D, N)`` effective relevance, ``noise`` ``(D, B, N, E)``,
    ``penalised`` ``(D, N)`` bool: the words whose ``s`` enters ``||s||₁`` (free, inside the document).
    Positions ``>= lengths`` are set to the zero padding vector whatever ``s``, ``x`` and ``noise`` hold
    there, and their ``s`` gets no gradient.
    """
    d, n, e = x.shape
    b = noise.shape[1]
    valid = (torch.arange(n, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
    sv = (s * valid)[:, None, :, None]
    xp = (sv * x[:, None] + (1.0 - sv) * noise) * valid[:, None, :, None]
    out = model.forward_embedded(xp.reshape(d * b, n, e), lengths.repeat_interleave(b))
    dist = distortion(out.view(d, b, -1), ref, target, loss).mean(1)
    return dist + lam * (s * valid * penalised.to(s.dtype)).sum(1)


def rde_objective_fast(projs: list, q: torch.Tensor, lengths: torch.Tensor, s: torch.Tensor, ref: torch.Tensor,
                       target: torch.Tensor, lam: torch.Tensor, penalised: torch.Tensor, loss: str) -> torch.Tensor:
    """:func:`rde_objective` for neutral-word noise through the first-layer fast path
    (:mod:`xaipipe.models.fast`): ``projs`` one :class:`~xaipipe.models.fast.DocumentProjection` per document,
    ``q`` ``(B, K, C)`` the tap projections of the ``B`` neutral words (draw ``b`` = word ``b`` at every
    position). Same value; gradient equal away from max-pool ties."""
    d, n = s.shape
    valid = (torch.arange(n, device=s.device)[None, :] < lengths[:, None]).to(s.dtype)
    b = q.shape[0]
    dists = []
    for i, proj in enumerate(projs):
        keep = s[i, : proj.length][None, :].expand(b, proj.length)
        out = proj.logits(keep, q)  # (B, C)
        dists.append(distortion(out[None], ref[i:i + 1], target[i:i + 1], loss).mean(1))
    return torch.cat(dists) + lam * (s * valid * penalised.to(s.dtype)).sum(1)


def neutral_noise(model: nn.Module, neutral_ids, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(D, n_neutral, width, E)``: draw ``b`` holds neutral word ``b``'s vector at every position inside
    each document and zeros in the padding."""
    device = model_device(model)
    ids = torch.as_tensor(np.asarray(neutral_ids, dtype=np.int64), device=device)
    with torch.no_grad():
        vec = model.embed(ids[None, :])[0]  # (n_neutral, E)
    valid = (torch.arange(width, device=device)[None, :] < lengths[:, None]).to(vec.dtype)
    return vec[None, :, None, :] * valid[:, None, :, None]


class _GaussianNoise:
    """One generator per document, all seeded with ``seed``: document ``d``'s draws at step ``t`` are the
    ``t``-th ``(B, L_d, E)`` block of its own stream, whatever the batch it is explained in."""

    def __init__(self, lengths: torch.Tensor, width: int, emb_dim: int, batch: int, seed: int,
                 device: torch.device, dtype: torch.dtype):
        self.lengths = [int(v) for v in lengths]
        self.gens = [torch.Generator(device=device).manual_seed(int(seed)) for _ in self.lengths]
        self.buf = torch.zeros(len(self.lengths), batch, width, emb_dim, device=device, dtype=dtype)
        self.batch, self.emb_dim = batch, emb_dim

    def draw(self) -> torch.Tensor:
        for i, (length, gen) in enumerate(zip(self.lengths, self.gens)):
            g = torch.randn(self.batch, length, self.emb_dim, generator=gen, device=self.buf.device,
                            dtype=self.buf.dtype)
            self.buf[i, :, :length] = g.clamp_(-1.0, 1.0)
        return self.buf


def optimise_mask(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, ref: torch.Tensor,
                  target: torch.Tensor, lam: torch.Tensor, free: torch.Tensor, fixed: float, init: float,
                  loss: str, noise: str, neutral_ids, batch: int, steps: int, lr: float,
                  seed: int) -> torch.Tensor:
    """Optimise ``s`` for a padded batch of documents; returns ``s`` ``(D, N)`` in [0, 1] (0 in padding).

    ``free`` ``(D, N)``: the words whose ``s`` is optimised; the others (inside the document) are held at
    ``fixed``. ``lam`` ``(D,)``: λ per document."""
    d, n, e = x.shape
    valid = torch.arange(n, device=x.device)[None, :] < lengths[:, None]
    free = free & valid
    fast = None
    if noise == "neutral" and use_fast_path(model):
        projs = [DocumentProjection(model, x[i, : int(lengths[i])]) for i in range(d)]
        ids = torch.as_tensor(np.asarray(neutral_ids, dtype=np.int64), device=x.device)
        with torch.no_grad():
            fast = (projs, projs[0].project(model.embed(ids[None])[0]))
        g_fixed = gauss = None
    elif noise == "neutral":
        g_fixed = neutral_noise(model, neutral_ids, lengths, n).to(x.dtype)
        gauss = None
    else:
        gauss = _GaussianNoise(lengths, n, e, batch, seed, x.device, x.dtype)
    fixed_t = torch.full_like(x[:, :, 0], float(fixed))
    s_param = torch.full_like(x[:, :, 0], float(init)).requires_grad_(True)
    opt = torch.optim.Adam([s_param], lr=lr)
    for _ in range(steps):
        with torch.enable_grad():
            s_eff = torch.where(free, s_param, fixed_t)
            if fast is not None:
                total = rde_objective_fast(fast[0], fast[1], lengths, s_eff, ref, target, lam, free, loss).sum()
            else:
                g = g_fixed if gauss is None else gauss.draw()
                total = rde_objective(model, x, lengths, s_eff, g, ref, target, lam, free, loss).sum()
            (grad,) = torch.autograd.grad(total, s_param)
        s_param.grad = grad
        opt.step()
        with torch.no_grad():
            s_param.clamp_(0.0, 1.0)
    with torch.no_grad():
        return torch.where(free, s_param, fixed_t).detach() * valid


@register("rde")
class RDE(Explainer):
    """Rate-distortion explanation; see the module docstring for parameters and semantics."""

    def __init__(self, model: nn.Module, **params: Any):
        super().__init__(model, **params)
        p = resolve_params("rde", params, _DEFAULTS)
        self.fixed_from = p["fixed_from"]
        if self.fixed_from not in (None, "l4"):
            raise XaipipeError(f"rde: fixed_from must be 'l4' or absent, not {self.fixed_from!r}")
        self.loss = str(p["loss"] if "loss" in params or self.fixed_from is None else "l1").lower()
        if self.loss not in LOSSES:
            raise XaipipeError(f"rde: unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if self.fixed_from is not None and self.loss == "l4":
            raise XaipipeError("rde: fixed_from: l4 needs loss l1 or l2 for the second stage")
        self.lam = float(p["lam"] if p["lam"] is not None else (0.0 if self.loss == "l4" else 0.1))
        self.lr, self.steps, self.init = float(p["lr"]), int(p["steps"]), float(p["init"])
        self.noise = str(p["noise"]).lower()
        if self.noise not in NOISES:
            raise XaipipeError(f"rde: unknown noise {self.noise!r}; known: {', '.join(NOISES)}")
        self.neutral_ids = p["neutral_ids"]
        if self.noise == "neutral":
            if not self.neutral_ids:
                raise XaipipeError("rde: noise 'neutral' needs a non-empty list neutral_ids of vocabulary ids")
            self.neutral_ids = [int(i) for i in self.neutral_ids]
            n_vocab = getattr(model, "embedding", None)
            n_vocab = int(n_vocab.shape[0]) if isinstance(n_vocab, torch.Tensor) else None
            if any(i < 0 or (n_vocab is not None and i >= n_vocab) for i in self.neutral_ids):
                raise XaipipeError(f"rde: neutral_ids outside the vocabulary (size {n_vocab})")
            self.batch = len(self.neutral_ids)
        else:
            self.batch = int(p["batch"])
        self.seed = int(p["seed"])
        self.adaptive = bool(p["adaptive"] if p["adaptive"] is not None else self.fixed_from is not None)
        self.lam_factor, self.max_rounds = float(p["lam_factor"]), int(p["max_rounds"])
        self.target_low, self.target_high = float(p["target_low"]), float(p["target_high"])
        if self.adaptive:
            if self.lam <= 0 or self.lam_factor <= 1 or self.max_rounds < 1:
                raise XaipipeError("rde: adaptive λ needs lam > 0, lam_factor > 1 and max_rounds >= 1")
            if not 0 <= self.target_low <= self.target_high <= 1:
                raise XaipipeError("rde: adaptive λ needs 0 <= target_low <= target_high <= 1")
        self.fix_value = float(p["fix_value"])
        if self.fixed_from is not None and self.fix_value not in (0.0, 1.0):
            raise XaipipeError("rde: fix_value must be 0 (RDE-L1R) or 1 (RDE-L1)")
        self.keep_fraction = float(p["keep_fraction"])
        self.l4_lam, self.l4_init = float(p["l4_lam"]), float(p["l4_init"])
        if self.steps < 1 or self.batch < 1 or self.lr <= 0 or not 0 <= self.init <= 1:
            raise XaipipeError("rde: need steps >= 1, batch >= 1, lr > 0 and 0 <= init <= 1")
        self.max_tokens = int(p["max_tokens"])
        if p["batch_docs"] is not None:
            self.batch_docs = int(p["batch_docs"])

    # -- one group of documents --------------------------------------------------------------------

    def _run(self, x, lengths, ref, target, lam, free, fixed, init, loss) -> torch.Tensor:
        return optimise_mask(self.model, x, lengths, ref, target, lam, free, fixed, init, loss, self.noise,
                             self.neutral_ids, self.batch, self.steps, self.lr, self.seed)

    def _adaptive(self, x, lengths, ref, target, free, fixed, init, loss):
        """Optimise with per-document λ until the mean relevance over ``free`` is in range."""
        d = x.shape[0]
        dev = x.device
        lam = torch.full((d,), self.lam, device=dev, dtype=x.dtype)
        lo = torch.zeros_like(lam)                      # largest λ seen with mean too high
        hi = torch.full_like(lam, math.inf)             # smallest λ seen with mean too low
        best_s = torch.zeros_like(x[:, :, 0])
        best_err = torch.full_like(lam, math.inf)
        best_lam, best_mean = lam.clone(), torch.zeros_like(lam)
        rounds = torch.zeros(d, dtype=torch.long, device=dev)
        active = torch.ones(d, dtype=torch.bool, device=dev)
        n_free = free.sum(1).clamp(min=1).to(x.dtype)
        for _ in range(self.max_rounds):
            idx = active.nonzero().squeeze(1)
            s = self._run(x[idx], lengths[idx], ref[idx], target[idx], lam[idx], free[idx], fixed, init, loss)
            mean = (s * free[idx]).sum(1) / n_free[idx]
            err = (self.target_low - mean).clamp(min=0) + (mean - self.target_high).clamp(min=0)
            rounds[idx] += 1
            better = err < best_err[idx]
            bi = idx[better]
            best_s[bi], best_err[bi], best_lam[bi], best_mean[bi] = s[better], err[better], lam[bi], mean[better]
            too_high, too_low = mean > self.target_high, mean < self.target_low
            li, hj = idx[too_high], idx[too_low]
            lo[li] = lam[li]
            hi[hj] = lam[hj]
            both = torch.isfinite(hi) & (lo > 0)
            up = torch.where(both[li], (lo[li] * hi[li]).sqrt(), lam[li] * self.lam_factor)
            down = torch.where(both[hj], (lo[hj] * hi[hj]).sqrt(), lam[hj] / self.lam_factor)
            lam[li], lam[hj] = up, down
            active[idx[err == 0]] = False
            if not bool(active.any()):
                break
        return best_s, best_lam, best_mean, best_err == 0, rounds

    def _group(self, docs: list[np.ndarray], target: list[int]) -> list[tuple[np.ndarray, dict]]:
        x, lengths = pad_embedded(self.model, docs, model_device(self.model))
        d, n, _ = x.shape
        tgt = torch.as_tensor(target, dtype=torch.long, device=x.device)
        with torch.no_grad():
            ref = self.model.forward_embedded(x, lengths)
        valid = torch.arange(n, device=x.device)[None, :] < lengths[:, None]
        extra: list[dict] = [{} for _ in range(d)]
        free = valid
        if self.fixed_from == "l4":
            s4 = self._run(x, lengths, ref, tgt, torch.full((d,), self.l4_lam, device=x.device, dtype=x.dtype),
                           valid, 0.0, self.l4_init, "l4")
            keep = torch.ceil(self.keep_fraction * lengths.to(torch.float64)).clamp(min=1).to(torch.long)
            order = torch.sort(s4.masked_fill(~valid, -math.inf), dim=1, descending=True, stable=True).indices
            rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=x.device).expand(d, n))
            free = valid & (rank < keep[:, None])
            fixed, loss = self.fix_value, self.loss
            for i in range(d):
                extra[i]["n_free"] = int(keep[i])
        else:
            fixed, loss = 0.0, self.loss
        if self.adaptive:
            s, lam, mean, ok, rounds = self._adaptive(x, lengths, ref, tgt, free, fixed, self.init, loss)
            for i in range(d):
                extra[i].update(lam=float(lam[i]), rounds=int(rounds[i]), mean_relevance=float(mean[i]),
                                in_range=bool(ok[i]))
        else:
            lam = torch.full((d,), self.lam, device=x.device, dtype=x.dtype)
            s = self._run(x, lengths, ref, tgt, lam, free, fixed, self.init, loss)
            for i in range(d):
                extra[i]["lam"] = self.lam
        if loss == "l4":
            s = 2.0 * s - 1.0  # report 3.3: L4 relevances scaled to [-1, 1]; neutral 0.5 -> 0
        s = s.cpu().numpy().astype(np.float64)
        return [(s[i, : len(doc)].copy(), extra[i]) for i, doc in enumerate(docs)]

    def _attribute_batch(self, docs: list[np.ndarray], target: list[int]):
        order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
        out: list = [None] * len(docs)
        group: list[int] = []

        def flush():
            if group:
                for i, r in zip(group, self._group([docs[j] for j in group], [target[j] for j in group])):
                    out[i] = r
                group.clear()

        for i in order:  # ascending length: the last member of a group is its widest
            if group and (len(group) + 1) * self.batch * len(docs[i]) > self.max_tokens:
                flush()
            group.append(i)
        flush()
        return out
