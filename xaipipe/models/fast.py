"""Fast perturbation path for :class:`~xaipipe.models.TextCNN`: exploit the first layer's linearity and
locality (issue "Performance").

Almost every method evaluates the classifier on one document with some words replaced (by the zero vector
or by a neutral word): greedy deletion, occlusion, LIME, SHAP, deletion/distortion curves and RDE with
neutral-word noise. A full forward costs ``O(N · K · E · C)`` (the convolution) and is compute-bound already
at batch 1 on a CPU, so batching does not help. But the convolution is linear in the embeddings:

    z[t, c] = b[c] + Σ_k W[c, :, k] · x[t + k]  =  b[c] + Σ_k P[t + k, k, c],   P[n, k] = W[:, :, k] x[n]

The *tap projections* ``P`` (``N x K x C``) are computed once per document (one forward's worth of work).
A perturbed copy ``x' = m ⊙ x + (1 - m) ⊙ r`` (``m`` a keep weight per word, 0/1 or fractional, ``r`` a
replacement vector per copy) then has

    z'[t, c] = b[c] + Σ_k m[t + k] P[t + k, k, c] + (1 - m[t + k]) Q[k, c],   Q[k] = W[:, :, k] r

which is ``O(N · K · C)`` per copy instead of ``O(N · K · E · C)`` (``E = 300``): :meth:`DocumentProjection.logits`.
It runs in chunks of copies and windows that stay in cache, keeping only a running maximum over the windows
(the max-pool), never the full ``(copies, windows, channels)`` tensor.

Gradients (RDE optimises ``m``): the max-pool's gradient flows only through the arg-max window of each
(copy, channel). :meth:`DocumentProjection.logits` with ``m.requires_grad`` finds the arg-max windows without
autograd, then recomputes the pooled value at exactly those windows with differentiable ops
(``O(copies · K · C)``): the same value and, away from ties, the same gradient as autograd through the
full convolution.

One more deletion changes only the ``K`` windows that contain the word: :func:`greedy_step_values` evaluates
the deletion of *every* candidate word of a document in ``O(N · K · C)`` with prefix/suffix maxima for the
unchanged windows (Algorithm 1's inner loop of the report, section 5).

The direct path (``model.forward_embedded`` on perturbed copies) stays the reference and the fallback for
models without this structure (:func:`has_fast_path`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from .text_cnn import TextCNN

__all__ = ["DocumentProjection", "direct_path", "greedy_step_values", "has_fast_path", "sequential_replacements",
           "use_fast_path", "window_pool"]

#: > 0: the direct path everywhere. XAIPIPE_DIRECT_PATH=1 in the environment sets it for a whole run
#: (benchmarks of the pipeline with and without the fast path, debugging).
_DISABLED = [int(os.environ.get("XAIPIPE_DIRECT_PATH", "0").strip().lower() not in ("", "0", "false", "no"))]


@contextmanager
def direct_path():
    """Within this context every method uses the direct path (full forwards of perturbed copies): the
    reference that benchmarks and tests compare the fast path with."""
    _DISABLED[0] += 1
    try:
        yield
    finally:
        _DISABLED[0] -= 1


def use_fast_path(model: nn.Module) -> bool:
    """Whether explainers and curves take the fast path for ``model`` (structure supported, not disabled
    by :func:`direct_path`, model in eval mode so that dropout is off)."""
    return not _DISABLED[0] and not model.training and has_fast_path(model)


def has_fast_path(model: nn.Module) -> bool:
    """True for models with the TextCNN structure (conv over embeddings -> max-pool -> classifier)."""
    return isinstance(model, TextCNN) and isinstance(getattr(model, "conv", None), nn.Conv1d) \
        and model.conv.stride == (1,) and model.conv.padding == (0,) and model.conv.dilation == (1,) \
        and model.conv.groups == 1


class DocumentProjection:
    """Tap projections of one document through a TextCNN's first convolution (see the module docstring).

    ``x``: the embedded document ``(L, E)`` (unpadded). Documents shorter than the kernel are padded with
    zero vectors to ``K`` words, as in :meth:`TextCNN.features`.
    """

    #: copies x windows x channels per chunk (~4 MB of float32: stays in cache)
    chunk_elems = 1 << 20

    def __init__(self, model: TextCNN, x: torch.Tensor):
        if not has_fast_path(model):
            raise TypeError(f"{type(model).__name__} has no fast first-layer path")
        self.model = model
        w = model.conv.weight.detach()  # (C, E, K)
        self.c, self.e, self.k = w.shape
        self.bias = model.conv.bias.detach() if model.conv.bias is not None else torch.zeros(self.c, device=w.device)
        self.w_ekc = w.permute(1, 2, 0).reshape(self.e, self.k * self.c)  # (E, K*C)
        x = x.detach()
        self.length = int(x.shape[0])
        if self.length < self.k:
            x = F.pad(x, (0, 0, 0, self.k - self.length))
        self.x = x
        self.n = int(x.shape[0])  # padded length >= K
        self.t = self.n - self.k + 1  # windows
        self._p = self._pt = self._z = None

    # the projections are computed on first use: curves need only a few rows of P (:meth:`rows`)
    @property
    def p(self) -> torch.Tensor:
        """``P[n, k, c]``: word ``n`` through tap ``k`` ``(N, K, C)``."""
        if self._p is None:
            with torch.no_grad():
                self._p = (self.x @ self.w_ekc).view(self.n, self.k, self.c)
        return self._p

    @property
    def pt(self) -> torch.Tensor:
        """``Pt[t, k, c] = P[t + k, k, c]``: the contribution of tap ``k`` to window ``t`` ``(T, K, C)``."""
        if self._pt is None:
            dev = self.x.device
            idx = torch.arange(self.t, device=dev)[:, None] + torch.arange(self.k, device=dev)[None, :]
            self._pt = self.p[idx, torch.arange(self.k, device=dev)[None, :]]
        return self._pt

    @property
    def z_full(self) -> torch.Tensor:
        """The unperturbed convolution output ``(T, C)`` (the model's own convolution when ``P`` is not
        needed otherwise)."""
        if self._z is None:
            with torch.no_grad():
                if self._pt is not None:
                    self._z = self._pt.sum(1) + self.bias
                else:
                    self._z = self.model.conv(self.x.t()[None])[0].t().contiguous()
        return self._z

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """``P[positions]`` ``(M, K, C)`` without projecting the whole document."""
        if self._p is not None:
            return self._p[positions]
        with torch.no_grad():
            return (self.x[positions] @ self.w_ekc).view(-1, self.k, self.c)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """Replacement vectors ``(..., E)`` -> their tap projections ``(..., K, C)``."""
        with torch.no_grad():
            return (v.detach().to(self.w_ekc.dtype) @ self.w_ekc).view(*v.shape[:-1], self.k, self.c)

    def _unfold(self, keep: torch.Tensor) -> torch.Tensor:
        """keep ``(S, L)`` -> ``(T, S, K)`` with ``[t, s, k] = keep[s, t + k]`` (padding counts as kept)."""
        if self.n > self.length:
            keep = F.pad(keep, (0, self.n - self.length), value=1.0)
        return keep.unfold(1, self.k, 1).transpose(0, 1)

    def pooled(self, keep: torch.Tensor, replacement: torch.Tensor | None = None) -> torch.Tensor:
        """Max-pooled pre-ReLU features ``(S, C)`` of the copies ``keep ⊙ x + (1 - keep) ⊙ r``.

        ``keep`` ``(S, L)`` weights per word; ``replacement``: ``None`` (zero vector) or tap projections
        ``(S, K, C)`` / ``(K, C)`` of one replacement vector per copy (:meth:`project`). Differentiable in
        ``keep`` (see the module docstring)."""
        keep = keep.to(self.x.dtype)
        s = keep.shape[0]
        q = None
        if replacement is not None:
            q = replacement.to(self.x.dtype)
            if q.dim() == 2:
                q = q.expand(s, self.k, self.c)
        ku = self._unfold(keep)  # (T, S, K) view
        need_grad = torch.is_grad_enabled() and (keep.requires_grad or (q is not None and q.requires_grad))
        with torch.no_grad():
            kd = ku.detach().contiguous()
            kr = None if q is None else (1.0 - kd).transpose(0, 1).contiguous()  # (S, T, K)
            qd = None if q is None else q.detach().contiguous()
            best = torch.empty(s, self.c, dtype=self.x.dtype, device=self.x.device)
            arg = torch.empty(s, self.c, dtype=torch.long, device=self.x.device) if need_grad else None
            bias = self.bias.view(1, 1, -1)
            sc = max(1, min(s, self.chunk_elems // (4 * self.c)))
            tc = max(1, self.chunk_elems // (sc * self.c))
            for s0 in range(0, s, sc):
                s1 = min(s0 + sc, s)
                m = a = None
                for t0 in range(0, self.t, tc):
                    t1 = min(t0 + tc, self.t)
                    z = torch.baddbmm(bias, kd[t0:t1, s0:s1], self.pt[t0:t1])  # (Tc, Sc, C)
                    if qd is not None:  # + Σ_k (1 - keep) Q[s, k]
                        z += torch.bmm(kr[s0:s1, t0:t1], qd[s0:s1]).transpose(0, 1)
                    if arg is None:
                        v = z.amax(0)
                        m = v if m is None else torch.maximum(m, v)
                    else:
                        v, ix = z.max(0)
                        if m is None:
                            m, a = v, ix
                        else:
                            better = v > m
                            m = torch.where(better, v, m)
                            a = torch.where(better, ix + t0, a)
                best[s0:s1] = m
                if arg is not None:
                    arg[s0:s1] = a
        if not need_grad:
            return best
        # differentiable recomputation at the arg-max windows: O(S · K · C)
        kg = ku.permute(1, 2, 0).gather(2, arg[:, None, :].expand(s, self.k, self.c))  # (S, K, C)
        ptg = self.pt[arg, :, torch.arange(self.c, device=arg.device)[None, :]]  # (S, C, K): Pt[arg, k, c]
        val = (kg * ptg.transpose(1, 2)).sum(1) + self.bias
        if q is not None:
            val = val + ((1.0 - kg) * q[:, :, :]).sum(1)
        return val

    def logits(self, keep: torch.Tensor, replacement: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(S, n_classes)`` of the perturbed copies (the model's classifier head after the pool)."""
        m = self.model
        return m.classifier(m.dropout_in(F.relu(self.pooled(keep, replacement))))

    def pooled_windows(self, keep: torch.Tensor, rpool: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Max-pooled pre-ReLU features ``(S, C)`` of copies that replace the deleted fraction of every word
        by a *different* vector per position: copy ``s`` is ``keep ⊙ x + (1 - keep) ⊙ r[o_s : o_s + L]``, a
        window at offset ``offsets[s]`` of a pool document ``r`` given by its tap projections ``rpool``
        ``(L_pool, K, C)`` (:meth:`project`; ``L_pool >= N + max offset``, ``N`` the document's length
        padded to K). ``keep`` ``(L,)`` is shared by all copies (RDE's mask). RDE's Gaussian noise and
        per-position neutral words (:mod:`xaipipe.explain.rde`) run through this.

        Window ``t`` of copy ``s`` is ``A[t] + Σ_k (1 - keep[t+k]) rpool[o_s + t + k, k]`` with the kept part
        ``A[t] = b + Σ_k keep[t+k] P[t+k, k]`` computed once: ``O(S · T · K · C)`` additions in one fused
        loop (:func:`window_pool`, compiled with numba; a torch fallback otherwise) instead of projecting
        every noise vector (``O(S · L · E · K · C)``, the direct path). Differentiable in ``keep``: the
        arg-max window of every (copy, channel) is found without autograd, then the pooled value is
        recomputed there with autograd (``O(S · K · C)``), as in :meth:`pooled`."""
        keep = keep.to(self.x.dtype).reshape(-1)
        if self.n > self.length:  # documents shorter than K: padding counts as kept
            keep = F.pad(keep, (0, self.n - self.length), value=1.0)
        offsets = offsets.to(device=self.x.device, dtype=torch.long)
        rpool = rpool.to(self.x.dtype)
        if int(offsets.max()) + self.n > rpool.shape[0]:
            raise ValueError(f"pool of {rpool.shape[0]} positions too short for offset {int(offsets.max())} "
                             f"and {self.n} words")
        return _WindowPool.apply(keep, self.pt, self.bias, rpool, offsets)

    def logits_windows(self, keep: torch.Tensor, rpool: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Logits ``(S, n_classes)`` of :meth:`pooled_windows`'s copies."""
        m = self.model
        return m.classifier(m.dropout_in(F.relu(self.pooled_windows(keep, rpool, offsets))))


class _WindowPool(torch.autograd.Function):
    """The max-pool of :meth:`DocumentProjection.pooled_windows` with its gradient in ``keep`` written out:
    at the arg-max window ``t*`` of copy ``s`` and channel ``c`` the pooled value is ``b[c] + Σ_k keep[t*+k]
    (P[t*+k, k, c] - R[o_s+t*+k, k, c]) + R[o_s+t*+k, k, c]``, so ``∂/∂keep[n]`` is the sum over the (s, c, k)
    with ``t*+k = n`` of ``grad[s, c] · (P - R)``. Equal to autograd through the convolution away from
    max-pool ties. On the CPU one compiled loop (numba) does the kept part, the maxima, arg-maxima and
    ``P - R``; elsewhere torch ops do (:func:`_window_pool_torch`)."""

    @staticmethod
    def forward(ctx, keep, pt, bias, rpool, offsets):
        with torch.no_grad():
            best, arg, diff = window_pool(keep.detach(), pt, bias, rpool, offsets, ctx.needs_input_grad[0])
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(arg, diff)
            ctx.n = keep.shape[0]
        return best

    @staticmethod
    def backward(ctx, grad):
        arg, diff = ctx.saved_tensors
        if _window_pool_grad_numba is not None and grad.device.type == "cpu" and not _DISABLED_NUMBA[0]:
            g = torch.zeros(ctx.n, dtype=torch.float64)
            _window_pool_grad_numba(grad.detach().contiguous().numpy(), arg.numpy(), diff.numpy(), g.numpy())
            return g.to(grad.dtype), None, None, None, None
        k = diff.shape[1]
        pos = arg[:, None, :] + torch.arange(k, device=arg.device)[None, :, None]
        w = (grad[:, None, :] * diff).reshape(-1)
        g = torch.bincount(pos.reshape(-1), weights=w.to(torch.float64), minlength=ctx.n).to(grad.dtype)
        return g, None, None, None, None


def _window_pool_torch(keep, pt, bias, rpool, offsets, with_diff):
    """Reference of :func:`window_pool` in torch ops (one strided view and einsum per copy)."""
    t, k, c = pt.shape
    base = torch.einsum("tk,tkc->tc", keep.unfold(0, k, 1), pt) + bias
    drop = (1.0 - keep).unfold(0, k, 1)
    rpool = rpool.contiguous()
    st = rpool.stride()
    best = torch.empty(len(offsets), c, dtype=pt.dtype, device=pt.device)
    arg = torch.empty(len(offsets), c, dtype=torch.long, device=pt.device)
    for i, o in enumerate(offsets.tolist()):
        view = rpool.as_strided((t, k, c), (st[0], st[0] + st[1], st[2]), storage_offset=o * st[0])
        best[i], arg[i] = (torch.einsum("tk,tkc->tc", drop, view) + base).max(0)
    if not with_diff:
        return best, arg, None
    taps = torch.arange(k, device=arg.device)[None, :, None]
    chan = torch.arange(c, device=arg.device)[None, None, :]
    ptg = pt[arg[:, None, :], taps, chan]
    rg = rpool[arg[:, None, :] + taps + offsets[:, None, None], taps, chan]
    return best, arg, ptg - rg


try:  # the fused loop of pooled_windows; numba is a dependency, the torch version is the fallback
    import numba as _numba
    import numpy as _np

    @_numba.njit(cache=True)
    def _window_pool_numba(keep, pt, bias, rpool, offsets, best, arg, diff, with_diff):  # pragma: no cover
        t_n, k_n, c_n = pt.shape
        base = _np.empty((t_n, c_n), dtype=pt.dtype)
        for t in range(t_n):  # the kept part, shared by every copy (loops ordered for contiguous channels)
            for c in range(c_n):
                base[t, c] = bias[c]
            for k in range(k_n):
                w = keep[t + k]
                for c in range(c_n):
                    base[t, c] += w * pt[t, k, c]
        row = _np.empty(c_n, dtype=pt.dtype)
        for s in range(offsets.shape[0]):
            o = offsets[s]
            for c in range(c_n):
                best[s, c] = -_np.inf
                arg[s, c] = 0
            for t in range(t_n):
                for c in range(c_n):
                    row[c] = base[t, c]
                for k in range(k_n):
                    w = 1.0 - keep[t + k]
                    if w != 0.0:
                        for c in range(c_n):
                            row[c] += w * rpool[o + t + k, k, c]
                for c in range(c_n):
                    if row[c] > best[s, c]:
                        best[s, c] = row[c]
                        arg[s, c] = t
            if with_diff:
                for c in range(c_n):
                    t = arg[s, c]
                    for k in range(k_n):
                        diff[s, k, c] = pt[t, k, c] - rpool[o + t + k, k, c]

    @_numba.njit(cache=True)
    def _window_pool_grad_numba(grad, arg, diff, out):  # pragma: no cover - compiled
        s_n, k_n, c_n = diff.shape
        for s in range(s_n):
            for c in range(c_n):
                g = grad[s, c]
                if g != 0.0:
                    t = arg[s, c]
                    for k in range(k_n):
                        out[t + k] += g * diff[s, k, c]
except ImportError:  # pragma: no cover - numba absent
    _window_pool_numba = _window_pool_grad_numba = None


def window_pool(keep: torch.Tensor, pt: torch.Tensor, bias: torch.Tensor, rpool: torch.Tensor,
                offsets: torch.Tensor, with_diff: bool = False):
    """For every copy ``s`` and channel ``c`` of :meth:`DocumentProjection.pooled_windows`: the max over the
    windows ``t`` of ``b[c] + Σ_k keep[t+k] P[t+k,k,c] + (1 - keep[t+k]) R[o_s+t+k, k, c]`` (``pt`` holds
    ``P[t+k, k]`` at ``[t, k]``), its arg-max ``t*`` (the first on ties) and, with ``with_diff``,
    ``P[t*+k, k, c] - R[o_s+t*+k, k, c]`` ``(S, K, C)`` for the gradient. CPU tensors go through one numba
    loop (no temporaries), others through torch ops."""
    s, (t, k, c) = len(offsets), pt.shape
    if _window_pool_numba is not None and pt.device.type == "cpu" and not _DISABLED_NUMBA[0]:
        best = torch.empty(s, c, dtype=pt.dtype)
        arg = torch.empty(s, c, dtype=torch.long)
        diff = torch.empty(s, k, c, dtype=pt.dtype) if with_diff else torch.empty(1, 1, 1, dtype=pt.dtype)
        _window_pool_numba(keep.contiguous().numpy(), pt.contiguous().numpy(), bias.contiguous().numpy(),
                           rpool.contiguous().numpy(), offsets.contiguous().numpy(), best.numpy(), arg.numpy(),
                           diff.numpy(), bool(with_diff))
        return best, arg, (diff if with_diff else None)
    return _window_pool_torch(keep, pt, bias, rpool, offsets, with_diff)


#: > 0: window_pool uses the torch ops even where numba is installed (tests compare the two)
_DISABLED_NUMBA = [0]


@torch.no_grad()
def greedy_step_values(proj: DocumentProjection, z: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Pooled pre-ReLU features ``(P, C)`` after deleting (zero vector) each candidate word on top of the
    current state.

    ``z`` ``(T, C)``: the current convolution output (earlier deletions already subtracted); ``candidates``
    ``(P,)`` word positions. Deleting word ``j`` subtracts ``P[j, k]`` from window ``j - k`` (``k < K``, the
    windows inside ``[0, T)``); the other windows keep their values, whose maxima come from prefix/suffix
    maxima of ``z``. ``O(P · K · C)``."""
    t, c = z.shape
    k = proj.k
    dev = z.device
    neg = torch.full((1, c), float("-inf"), dtype=z.dtype, device=dev)
    pre = torch.cat([neg, torch.cummax(z, 0).values], 0)  # pre[i] = max over windows < i
    suf = torch.cat([torch.flip(torch.cummax(torch.flip(z, [0]), 0).values, [0]), neg], 0)  # suf[i] = max >= i
    j = candidates.to(dev)
    taps = torch.arange(k, device=dev)
    win = j[:, None] - taps[None, :]  # (P, K) windows containing word j
    inside = (win >= 0) & (win < t)
    winc = win.clamp(0, t - 1)
    changed = z[winc] - proj.p[j][:, :, :]  # (P, K, C): z[j - k] - P[j, k]
    changed = changed.masked_fill(~inside[:, :, None], float("-inf"))
    lo = (j - k + 1).clamp(0, t)  # first changed window
    hi = (j + 1).clamp(0, t)  # one past the last changed window
    return torch.maximum(torch.maximum(pre[lo], suf[hi]), changed.amax(1))


@torch.no_grad()
def sequential_replacements(proj: DocumentProjection, positions: torch.Tensor, start: torch.Tensor,
                            add: torch.Tensor) -> torch.Tensor:
    """Pooled pre-ReLU features after each of a sequence of word changes (deletion/distortion curves).

    ``start`` ``(D, T, C)``: the convolution output before any change, one per draw; ``positions`` ``(M,)``
    the changed words in order; ``add`` ``(D, M, K, C)``: what changing word ``positions[r]`` adds to the
    window containing it at tap ``k`` (e.g. ``Q - P[j]`` to replace word ``j`` by a vector with tap
    projections ``Q``). Returns ``(D, M + 1, C)``: the max-pool of the state after 0, 1, ..., M changes.
    Each change touches only ``K`` windows: ``O(M · (K + T) · C)`` per draw instead of ``M`` forwards."""
    d, t, c = start.shape
    m = positions.shape[0]
    z = start.clone()
    out = torch.empty(d, m + 1, c, dtype=z.dtype, device=z.device)
    out[:, 0] = z.amax(1)
    taps = torch.arange(proj.k, device=z.device)
    for r in range(m):  # one vectorised update per step of the curve (K <= ~20), not per word
        win = int(positions[r]) - taps
        ok = (win >= 0) & (win < t)
        z[:, win[ok]] += add[:, r, taps[ok]]
        out[:, r + 1] = z.amax(1)
    return out
