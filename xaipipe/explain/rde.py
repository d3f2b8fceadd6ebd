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

``preset``          ``default`` or ``report``: where the defaults of ``noise_dist``, ``penalty``,
                    ``lam_relative`` and ``lam`` come from (explicit parameters always win). ``report`` is the report's literal method:
                    noise N(0, 1) clipped to [-1, 1], rate λ||s||₁ summed over the words, λ in logit units, λ = 0
                    for l4. ``default`` is the form that finds planted words (see "Scale" below): noise from
                    the embedding's own distribution, a rate averaged over the words, λ relative to the
                    document's distortion.
``loss``            ``l2`` (default), ``l1`` or ``l4``.
``lam``             λ; default 0.1 for l1/l2; for l4 0.1 (``default``) or 0 (``report``; section 6.3: "no
                    problem of setting any λ").
``lam_relative``    ``true`` (default preset): λ is in units of the document's reference distortion ``D₀``,
                    the distortion when every (free) word is replaced by noise (the rate's multiplier is
                    λ·D₀, :func:`reference_distortion`); λ = 1 then prices keeping every word like deleting
                    every word, for any model and document, so one λ fits a confident 100 %-accuracy
                    teacher and a hesitant one alike. ``false`` (report preset): λ as given.
``penalty``         the rate term. ``mean`` (default preset): λ times the *mean* of ``s`` over the (free)
                    words -- as in the official RDE code (``mu * mean |s|``), so that one λ means the same for
                    a 20-word and a 400-word document -- and for l4 λ times the mean of ``|2s - 1|``: the
                    sparsity of the signed map, which keeps words that change nothing at the neutral 0.5.
                    ``sum`` (report preset): λ||s||₁ = λ Σ s, for every loss (formulas above).
``lr``, ``steps``   Adam learning rate (0.05) and number of steps (200).
``batch``           ``B`` noise draws per step (16; ignored for neutral noise, see below).
``init``            initial value of every ``s`` (0.5).
``noise``           ``gaussian``: ``G`` i.i.d. per word, fresh draws every step, from ``noise_dist``;
                    ``neutral``: embeddings of neutral words (section 3.2, "64 prepositions and
                    articles ... the batch size is also fixed at 64"), vocabulary ids in ``neutral_ids``.
                    **Semantics:** draw ``b`` uses the vector of neutral word ``b`` at *every* position, so
                    ``(I-S)G`` fills each deleted fraction of each word with that one neutral word; the
                    batch is exactly the ``len(neutral_ids)`` words, the same at every step (no randomness).
                    That is ``neutral_draw: word`` (report preset). ``neutral_draw: position`` (default
                    preset): every deleted position of every draw gets a neutral word drawn at random, ``batch``
                    fresh draws per step (like the Gaussian noise) -- one word repeated over every deleted
                    position forms windows ("the the the the the") that no document has, and a max-pool
                    CNN answers them with distortion whichever words were deleted.
                    With ``word``, TextCNN models run this noise through the first-layer fast path
                    (:func:`rde_objective_fast`, ~10x cheaper per step); Gaussian noise stays a full
                    forward/backward over all documents and draws of a batch (one batched pass per step).
``noise_dist``      distribution of Gaussian noise. ``embedding`` (default preset): N(μ, Σ), the mean and
                    covariance of the model's word vectors (the rows of its embedding matrix but the
                    padding row), as the official RDE code draws its noise from the data's own mean and
                    covariance. ``standard`` (report preset): N(0, 1) per component clipped to [-1, 1]
                    (section 3.1).
``noise_pool``      Gaussian and per-position neutral noise (1.0): > 0 draws every noise document as a window
                    of a pool of ``(1 + noise_pool) x length`` vectors (at least 256 extra) drawn once per
                    document (:class:`_PoolNoise`): each draw is still ``L`` independent vectors of the noise
                    distribution, and for TextCNN models the pool is projected through the first layer once,
                    so a step costs gathers and additions (:meth:`~xaipipe.models.fast.DocumentProjection.
                    pooled_windows`, a compiled loop) instead of a forward and backward of every draw
                    (bench/bench_rde_gaussian.py: >= 10x at 400 words). ``0``: fresh draws every step
                    through full forwards (the report's procedure, slow).
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
                    at ``fix_value`` during the optimisation); ``extra["n_free"]`` counts the free words. **The map**
                    holds the second stage's relevance of the free words and 0 for the fixed words, for
                    both fix values: the second stage explains only the L4 candidates, and a fixed word was
                    judged *less* relevant by L4 -- writing its fix value 1 into the map (as this code did
                    before) ranked all the words L4 had dropped above every candidate.
``max_tokens``      memory bound: documents optimised together satisfy ``docs · B · N_max ≤ max_tokens``
                    (``2**17``; at least one document). ``batch_docs``: documents per ``attribute`` chunk.

Scale (why the default preset differs from the report's literal settings). Word vectors here have unit
length (``embedding.scale: unit``), so a clipped N(0, 1) vector has norm ~5 in 50 and ~12 in 300
dimensions: "deleting" a word by such noise changes the output far more than any real word does, every
word looks relevant, and on the planted-keyword corpus the report's settings rank the planted words near
or below chance (ROC-AUC 0.38-0.68 over the variants). Noise from the embedding's own distribution keeps a
deleted word a plausible word. A rate summed over the words grows with the document's length while the
distortion does not, so one λ pushes every ``s`` of a long document to its bound; averaged, it does not.
And the distortion is in squared logits, whose scale differs between models (a confident teacher's
logits are larger): λ relative to the distortion of deleting every word means the same for each.
Both presets stay selectable; the README shows both on planted ground truth.

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
from ..method_params import RDE_PRESETS as PRESETS
from .base import Explainer, model_device, pad_embedded, register, resolve_params

LOSSES = ("l1", "l2", "l4")
NOISES = ("gaussian", "neutral")

PENALTIES = ("mean", "sum")
NOISE_DISTS = ("embedding", "standard")
NEUTRAL_DRAWS = ("position", "word")


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


def rate(s: torch.Tensor, valid: torch.Tensor, penalised: torch.Tensor, loss: str, penalty: str) -> torch.Tensor:
    """The rate term without λ, per document ``(D,)``: ``Σ s`` over the penalised words (``sum``), or for
    ``mean`` the mean of ``s`` (l1/l2) or of ``|2s - 1|`` (l4) over them."""
    w = valid.to(s.dtype) * penalised.to(s.dtype)
    if penalty == "sum":
        return (s * w).sum(1)
    if penalty != "mean":
        raise XaipipeError(f"rde: unknown penalty {penalty!r}; known: {', '.join(PENALTIES)}")
    term = (2.0 * s - 1.0).abs() if loss == "l4" else s
    return (term * w).sum(1) / w.sum(1).clamp(min=1.0)


def rde_objective(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, s: torch.Tensor,
                  noise: torch.Tensor, ref: torch.Tensor, target: torch.Tensor, lam: torch.Tensor,
                  penalised: torch.Tensor, loss: str, penalty: str = "mean") -> torch.Tensor:
    """Per-document loss ``(D,)``: distortion of ``SX + (I-S)G`` averaged over the draws + λ · rate
    (:func:`rate`).

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
    return dist + lam * rate(s, valid, penalised, loss, penalty)


def rde_objective_fast(projs: list, q: torch.Tensor, lengths: torch.Tensor, s: torch.Tensor, ref: torch.Tensor,
                       target: torch.Tensor, lam: torch.Tensor, penalised: torch.Tensor, loss: str,
                       penalty: str = "mean") -> torch.Tensor:
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
    return torch.cat(dists) + lam * rate(s, valid, penalised, loss, penalty)


def rde_objective_windows(projs: list, rpools: list, offsets: list, lengths: torch.Tensor, s: torch.Tensor,
                          ref: torch.Tensor, target: torch.Tensor, lam: torch.Tensor, penalised: torch.Tensor,
                          loss: str, penalty: str = "mean") -> torch.Tensor:
    """:func:`rde_objective` for pool noise (:class:`_PoolNoise`) through the first-layer fast path: ``projs``
    one :class:`~xaipipe.models.fast.DocumentProjection` per document, ``rpools`` their pools' tap
    projections, ``offsets`` the draws' offsets per document. Same value as the direct path with the same
    draws; gradient equal away from max-pool ties."""
    d, n = s.shape
    valid = (torch.arange(n, device=s.device)[None, :] < lengths[:, None]).to(s.dtype)
    dists = []
    for i, proj in enumerate(projs):
        out = proj.logits_windows(s[i, : proj.length], rpools[i], offsets[i])  # (B, C)
        dists.append(distortion(out[None], ref[i:i + 1], target[i:i + 1], loss).mean(1))
    return torch.cat(dists) + lam * rate(s, valid, penalised, loss, penalty)


def neutral_noise(model: nn.Module, neutral_ids, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(D, n_neutral, width, E)``: draw ``b`` holds neutral word ``b``'s vector at every position inside
    each document and zeros in the padding."""
    device = model_device(model)
    ids = torch.as_tensor(np.asarray(neutral_ids, dtype=np.int64), device=device)
    with torch.no_grad():
        vec = model.embed(ids[None, :])[0]  # (n_neutral, E)
    valid = (torch.arange(width, device=device)[None, :] < lengths[:, None]).to(vec.dtype)
    return vec[None, :, None, :] * valid[:, None, :, None]


def embedding_noise_stats(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(E,)`` and a Cholesky factor ``L`` ``(E, E)`` (``L Lᵀ = Σ``) of the model's word vectors: the
    rows of its ``embedding`` matrix but the padding row 0, unweighted. A small ridge (1e-6 of the mean
    variance) keeps ``Σ`` positive definite when the vocabulary is smaller than the dimension."""
    emb = getattr(model, "embedding", None)
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or emb.shape[0] < 3:
        raise XaipipeError("rde: noise_dist 'embedding' needs a model with an embedding matrix of at least two "
                           "words; use noise_dist: standard")
    v = emb[1:].detach().to(torch.float64)
    mean = v.mean(0)
    c = v - mean
    cov = c.T @ c / max(1, v.shape[0] - 1)
    ridge = 1e-6 * float(cov.diagonal().mean().clamp(min=1e-12))
    chol = torch.linalg.cholesky(cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device))
    return mean.to(emb.dtype), chol.to(emb.dtype)


class _NeutralNoise:
    """Neutral-word noise drawn per position (``neutral_draw: position``): every deleted position of every
    draw gets a neutral word picked uniformly at random, fresh draws every step; one generator per
    document seeded with ``seed`` (as :class:`_GaussianNoise`)."""

    def __init__(self, lengths: torch.Tensor, width: int, vectors: torch.Tensor, batch: int, seed: int):
        self.lengths = [int(v) for v in lengths]
        dev = vectors.device
        self.gens = [torch.Generator(device=dev).manual_seed(int(seed)) for _ in self.lengths]
        self.vectors = vectors
        self.buf = torch.zeros(len(self.lengths), batch, width, vectors.shape[1], device=dev, dtype=vectors.dtype)
        self.batch = batch

    def draw(self) -> torch.Tensor:
        for i, (length, gen) in enumerate(zip(self.lengths, self.gens)):
            pick = torch.randint(len(self.vectors), (self.batch, length), generator=gen, device=self.vectors.device)
            self.buf[i, :, :length] = self.vectors[pick]
        return self.buf


class _PoolNoise:
    """Noise from a pool document per document (``noise_pool`` > 0). Document ``d`` (``L_d`` words, at least
    ``min_len``) gets ``N_d + P_d`` noise vectors drawn once with its own generator (seeded with ``seed``),
    ``P_d = max(POOL_MIN, ceil(noise_pool · N_d))``; every draw of every step is the window
    ``pool_d[o : o + L_d]`` at an offset ``o`` drawn uniformly from ``[0, P_d]`` (a second generator). A draw
    is thus a sequence of ``L_d`` independent noise vectors from the noise distribution, like a fresh draw;
    draws share vectors (position ``n`` sees ``P_d + 1`` different vectors over all draws, about as many as
    30 steps of 16 fresh draws give it), which lets the first-layer fast path project the noise once per
    document (:meth:`~xaipipe.models.fast.DocumentProjection.pooled_windows`) instead of every step."""

    def __init__(self, lengths: torch.Tensor, width: int, batch: int, seed: int, sampler, factor: float,
                 min_len: int, offset_seed: int | None = None, pools: list | None = None):
        self.lengths = [int(v) for v in lengths]
        self.batch, self.width = batch, width
        if pools is None:
            pools = []
            for length in self.lengths:
                n = max(length, min_len)
                extra = max(POOL_MIN, math.ceil(factor * n))
                gen = sampler.generator(seed)
                pools.append(sampler(n + extra, gen))
        self.pools = pools
        self.extra = [len(p) - max(length, min_len) for p, length in zip(self.pools, self.lengths)]
        first = self.pools[0]
        oseed = seed + OFFSET_SEED_OFFSET if offset_seed is None else offset_seed
        self.ogens = [torch.Generator(device=first.device).manual_seed(int(oseed)) for _ in self.lengths]
        self.buf = torch.zeros(len(self.lengths), batch, width, first.shape[1], device=first.device, dtype=first.dtype)

    def with_offsets(self, offset_seed: int) -> "_PoolNoise":
        """The same pools, offsets from another stream (the reference distortion's draws)."""
        return _PoolNoise(torch.tensor(self.lengths), self.width, self.batch, 0, None, 0.0, 0, offset_seed,
                          self.pools)

    def offsets(self) -> list[torch.Tensor]:
        return [torch.randint(0, extra + 1, (self.batch,), generator=gen, device=gen.device)
                for extra, gen in zip(self.extra, self.ogens)]

    def draw(self, offsets: list[torch.Tensor]) -> torch.Tensor:
        """The draws of ``offsets`` as noise documents ``(D, B, width, E)`` (the direct path)."""
        for i, (length, offs) in enumerate(zip(self.lengths, offsets)):
            idx = offs[:, None] + torch.arange(length, device=offs.device)[None, :]
            self.buf[i, :, :length] = self.pools[i][idx]
        return self.buf


class _Sampler:
    """Draws ``n`` noise vectors ``(n, E)`` from a torch generator: Gaussian (``stats`` = mean and Cholesky
    factor of the embedding, or clipped N(0, 1)) or neutral words picked uniformly (``vectors``)."""

    def __init__(self, emb_dim: int, device, dtype, stats=None, vectors: torch.Tensor | None = None):
        self.e, self.device, self.dtype = emb_dim, device, dtype
        self.stats = None if stats is None else (stats[0].to(device, dtype), stats[1].to(device, dtype).T.contiguous())
        self.vectors = vectors

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def __call__(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.vectors is not None:
            return self.vectors[torch.randint(len(self.vectors), (n,), generator=gen, device=self.device)]
        z = torch.randn(n, self.e, generator=gen, device=self.device, dtype=self.dtype)
        if self.stats is None:
            return z.clamp_(-1.0, 1.0)
        return torch.addmm(self.stats[0], z, self.stats[1])


class _GaussianNoise:
    """One generator per document, all seeded with ``seed``: document ``d``'s draws at step ``t`` are the
    ``t``-th ``(B, L_d, E)`` block of its own stream, whatever the batch it is explained in. ``stats``
    ``(mean, L)``: the draw is ``mean + z Lᵀ`` (``noise_dist: embedding``); ``None``: ``z`` clipped to
    [-1, 1] (``standard``)."""

    def __init__(self, lengths: torch.Tensor, width: int, emb_dim: int, batch: int, seed: int,
                 device: torch.device, dtype: torch.dtype, stats: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.lengths = [int(v) for v in lengths]
        self.gens = [torch.Generator(device=device).manual_seed(int(seed)) for _ in self.lengths]
        self.buf = torch.zeros(len(self.lengths), batch, width, emb_dim, device=device, dtype=dtype)
        self.batch, self.emb_dim = batch, emb_dim
        self.stats = None if stats is None else (stats[0].to(device, dtype), stats[1].to(device, dtype).T.contiguous())

    def draw(self) -> torch.Tensor:
        for i, (length, gen) in enumerate(zip(self.lengths, self.gens)):
            g = torch.randn(self.batch, length, self.emb_dim, generator=gen, device=self.buf.device,
                            dtype=self.buf.dtype)
            if self.stats is None:
                self.buf[i, :, :length] = g.clamp_(-1.0, 1.0)
            else:
                self.buf[i, :, :length] = torch.addmm(self.stats[0], g.view(-1, self.emb_dim),
                                                      self.stats[1]).view_as(g)
        return self.buf


#: the reference distortion's Gaussian draws come from a stream of their own (not the optimisation's)
REF_SEED_OFFSET = 1_000_003
#: the pool offsets (noise_pool > 0) come from a stream of their own too
OFFSET_SEED_OFFSET = 2_000_003
#: the smallest number of offsets of a pool (short documents)
POOL_MIN = 256


@torch.no_grad()
def reference_distortion(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, ref: torch.Tensor,
                         target: torch.Tensor, s0: torch.Tensor, loss: str, fast=None, g_fixed=None,
                         gauss=None, rounds: int = 1, windows=None) -> torch.Tensor:
    """``D₀`` ``(D,)``: the distortion of the mask ``s0`` (every free word deleted, the fixed ones at their
    value), averaged over the noise (``rounds`` draws of ``gauss``, or the neutral words), as a magnitude
    (``|D₀|``, at least 1e-8: the l4 distortion is signed). With ``lam_relative`` the rate's λ is
    multiplied by ``D₀``: λ = 1 prices keeping every word as much as deleting every word, whatever the
    model's logit scale or the document."""
    d, n = s0.shape
    zero = torch.zeros(d, dtype=x.dtype, device=x.device)
    none = torch.zeros_like(s0, dtype=torch.bool)
    if isinstance(gauss, _PoolNoise):
        total = 0.0
        for _ in range(rounds):
            offs = gauss.offsets()
            if windows is not None:
                total = total + rde_objective_windows(windows[0], windows[1], offs, lengths, s0, ref, target, zero,
                                                      none, loss)
            else:
                total = total + rde_objective(model, x, lengths, s0, gauss.draw(offs), ref, target, zero, none, loss)
        d0 = total / rounds
    elif fast is not None:
        d0 = rde_objective_fast(fast[0], fast[1], lengths, s0, ref, target, zero, none, loss)
    elif gauss is None:
        d0 = rde_objective(model, x, lengths, s0, g_fixed, ref, target, zero, none, loss)
    else:
        d0 = sum(rde_objective(model, x, lengths, s0, gauss.draw(), ref, target, zero, none, loss)
                 for _ in range(rounds)) / rounds
    return d0.abs().clamp(min=1e-8)


def optimise_mask(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, ref: torch.Tensor,
                  target: torch.Tensor, lam: torch.Tensor, free: torch.Tensor, fixed: float, init: float,
                  loss: str, noise: str, neutral_ids, batch: int, steps: int, lr: float,
                  seed: int, penalty: str = "mean", noise_stats=None, relative: bool = False,
                  ref_draws: int = 16, neutral_draw: str = "word", noise_pool: float = 0.0) -> torch.Tensor:
    """Optimise ``s`` for a padded batch of documents; returns ``s`` ``(D, N)`` in [0, 1] (0 in padding).

    ``free`` ``(D, N)``: the words whose ``s`` is optimised; the others (inside the document) are held at
    ``fixed``. ``lam`` ``(D,)``: λ per document. ``noise_stats``: ``(mean, L)`` of Gaussian noise from
    the embedding's distribution, or ``None`` for clipped N(0, 1). ``relative``: λ is in units of the
    document's reference distortion ``D₀`` (:func:`reference_distortion`, ``ref_draws`` Gaussian draws).
    ``noise_pool`` > 0: Gaussian and per-position neutral noise come from :class:`_PoolNoise` (the fast path
    for TextCNN models); 0: fresh draws every step through full forwards."""
    d, n, e = x.shape
    valid = torch.arange(n, device=x.device)[None, :] < lengths[:, None]
    free = free & valid
    fast = windows = None
    g_fixed = gauss = None
    if noise == "neutral" and neutral_draw == "word":  # the report's batch of neutral words
        if use_fast_path(model):
            projs = [DocumentProjection(model, x[i, : int(lengths[i])]) for i in range(d)]
            ids = torch.as_tensor(np.asarray(neutral_ids, dtype=np.int64), device=x.device)
            with torch.no_grad():
                fast = (projs, projs[0].project(model.embed(ids[None])[0]))
        else:
            g_fixed = neutral_noise(model, neutral_ids, lengths, n).to(x.dtype)
    else:
        vectors = None
        if noise == "neutral":
            with torch.no_grad():
                ids = torch.as_tensor(np.asarray(neutral_ids, dtype=np.int64), device=x.device)
                vectors = model.embed(ids[None])[0].to(x.dtype)
        if noise_pool > 0:
            kernel = int(getattr(model, "kernel_size", 1))
            gauss = _PoolNoise(lengths, n, batch, seed, _Sampler(e, x.device, x.dtype, noise_stats, vectors),
                               noise_pool, kernel)
            if use_fast_path(model):
                projs = [DocumentProjection(model, x[i, : int(lengths[i])]) for i in range(d)]
                windows = (projs, [p.project(pool) for p, pool in zip(projs, gauss.pools)])
        elif vectors is not None:
            gauss = _NeutralNoise(lengths, n, vectors, batch, seed)
        else:
            gauss = _GaussianNoise(lengths, n, e, batch, seed, x.device, x.dtype, noise_stats)
    fixed_t = torch.full_like(x[:, :, 0], float(fixed))
    if relative:
        if gauss is None:
            ref_noise = None
        elif isinstance(gauss, _PoolNoise):
            ref_noise = gauss.with_offsets(seed + REF_SEED_OFFSET)
        elif isinstance(gauss, _NeutralNoise):
            ref_noise = _NeutralNoise(lengths, n, gauss.vectors, batch, seed + REF_SEED_OFFSET)
        else:
            ref_noise = _GaussianNoise(lengths, n, e, batch, seed + REF_SEED_OFFSET, x.device, x.dtype, noise_stats)
        d0 = reference_distortion(model, x, lengths, ref, target, torch.where(free, 0.0, fixed_t), loss,
                                  fast, g_fixed, ref_noise, max(1, math.ceil(ref_draws / batch)), windows)
        lam = lam * d0
    s_param = torch.full_like(x[:, :, 0], float(init)).requires_grad_(True)
    opt = torch.optim.Adam([s_param], lr=lr)
    for _ in range(steps):
        with torch.enable_grad():
            s_eff = torch.where(free, s_param, fixed_t)
            if fast is not None:
                total = rde_objective_fast(fast[0], fast[1], lengths, s_eff, ref, target, lam, free, loss,
                                           penalty).sum()
            elif isinstance(gauss, _PoolNoise):
                offs = gauss.offsets()
                if windows is not None:
                    total = rde_objective_windows(windows[0], windows[1], offs, lengths, s_eff, ref, target, lam,
                                                  free, loss, penalty).sum()
                else:
                    total = rde_objective(model, x, lengths, s_eff, gauss.draw(offs), ref, target, lam, free,
                                          loss, penalty).sum()
            else:
                g = g_fixed if gauss is None else gauss.draw()
                total = rde_objective(model, x, lengths, s_eff, g, ref, target, lam, free, loss, penalty).sum()
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
        p = resolve_params("rde", params)
        self.preset = str(p["preset"]).lower()
        if self.preset not in PRESETS:
            raise XaipipeError(f"rde: unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        self.penalty = str(p["penalty"] if p["penalty"] is not None else preset["penalty"]).lower()
        if self.penalty not in PENALTIES:
            raise XaipipeError(f"rde: unknown penalty {self.penalty!r}; known: {', '.join(PENALTIES)}")
        self.noise_dist = str(p["noise_dist"] if p["noise_dist"] is not None else preset["noise_dist"]).lower()
        if self.noise_dist not in NOISE_DISTS:
            raise XaipipeError(f"rde: unknown noise_dist {self.noise_dist!r}; known: {', '.join(NOISE_DISTS)}")
        self.lam_relative = bool(p["lam_relative"] if p["lam_relative"] is not None else preset["lam_relative"])
        self.fixed_from = p["fixed_from"]
        if self.fixed_from not in (None, "l4"):
            raise XaipipeError(f"rde: fixed_from must be 'l4' or absent, not {self.fixed_from!r}")
        self.loss = str(p["loss"] if "loss" in params or self.fixed_from is None else "l1").lower()
        if self.loss not in LOSSES:
            raise XaipipeError(f"rde: unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if self.fixed_from is not None and self.loss == "l4":
            raise XaipipeError("rde: fixed_from: l4 needs loss l1 or l2 for the second stage")
        l4_default = float(preset["l4_lam"])
        self.lam = float(p["lam"] if p["lam"] is not None else (l4_default if self.loss == "l4" else preset["lam"]))
        self.lr, self.steps, self.init = float(p["lr"]), int(p["steps"]), float(p["init"])
        self.noise = str(p["noise"]).lower()
        if self.noise not in NOISES:
            raise XaipipeError(f"rde: unknown noise {self.noise!r}; known: {', '.join(NOISES)}")
        self.neutral_ids = p["neutral_ids"]
        self.neutral_draw = str(p["neutral_draw"] if p["neutral_draw"] is not None else preset["neutral_draw"]).lower()
        if self.neutral_draw not in NEUTRAL_DRAWS:
            raise XaipipeError(f"rde: unknown neutral_draw {self.neutral_draw!r}; known: {', '.join(NEUTRAL_DRAWS)}")
        if self.noise == "neutral":
            if not self.neutral_ids:
                raise XaipipeError("rde: noise 'neutral' needs a non-empty list neutral_ids of vocabulary ids")
            self.neutral_ids = [int(i) for i in self.neutral_ids]
            n_vocab = getattr(model, "embedding", None)
            n_vocab = int(n_vocab.shape[0]) if isinstance(n_vocab, torch.Tensor) else None
            if any(i < 0 or (n_vocab is not None and i >= n_vocab) for i in self.neutral_ids):
                raise XaipipeError(f"rde: neutral_ids outside the vocabulary (size {n_vocab})")
            self.batch = len(self.neutral_ids) if self.neutral_draw == "word" else int(p["batch"])
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
        self.l4_lam = float(p["l4_lam"] if p["l4_lam"] is not None else l4_default)
        self.l4_init = float(p["l4_init"])
        if self.steps < 1 or self.batch < 1 or self.lr <= 0 or not 0 <= self.init <= 1:
            raise XaipipeError("rde: need steps >= 1, batch >= 1, lr > 0 and 0 <= init <= 1")
        self.max_tokens = int(p["max_tokens"])
        if p["batch_docs"] is not None:
            self.batch_docs = int(p["batch_docs"])
        self.noise_pool = float(p["noise_pool"])
        self.noise_stats = (embedding_noise_stats(model)
                            if self.noise == "gaussian" and self.noise_dist == "embedding" else None)

    # -- one group of documents --------------------------------------------------------------------

    def _run(self, x, lengths, ref, target, lam, free, fixed, init, loss) -> torch.Tensor:
        return optimise_mask(self.model, x, lengths, ref, target, lam, free, fixed, init, loss, self.noise,
                             self.neutral_ids, self.batch, self.steps, self.lr, self.seed, self.penalty,
                             self.noise_stats, self.lam_relative, neutral_draw=self.neutral_draw,
                             noise_pool=self.noise_pool)

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
        if self.fixed_from is not None:
            s = s * free  # the map: the candidates' relevance, 0 for the fixed words (module docstring)
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
