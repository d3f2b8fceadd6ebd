"""Image explanations of teachers and students on SLIC superpixels (XDistillation sections III-A1, IV-B).

All three explainers answer for one target class per image (the teacher's prediction, so teacher and
student explain "the same prediction") and end as the paper's superpixel representation
(:func:`.superpixels.superpixel_map`: every pixel carries its superpixel's value):

``shap``
    ``shap.GradientExplainer`` (expected gradients; Lundberg & Lee 2017) or ``shap.DeepExplainer``
    (DeepLIFT-based) of the target class's **softmax probability** (``output: prob``, default; the paper
    keeps SHAP values in the range of "a model that outputs a probability", which the CAE's tanh output
    can reach) or logit, against ``background`` training images; summed per superpixel.
``gradcam``
    Grad-CAM (Selvaraju et al. 2017) with Captum's ``LayerGradCam`` at the model's ``cam_layer`` (the
    last convolution's ReLU; for the XDistillation student that of its CNN branch), ReLU, bilinear
    up-sampling to the image size, then summed per superpixel (the paper applies the same transform).
``lime``
    LIME (Ribeiro et al. 2016) with the SLIC segments as its interpretable features (the paper replaces
    quickshift by SLIC): exactly ``lime_image.LimeImageExplainer``'s sampling (``num_samples`` binary
    masks, the first all-on; an "off" superpixel takes ``hide_color``, or its mean colour when null),
    cosine distance, kernel ``sqrt(exp(-d^2 / 0.25^2))`` and ``lime_base.LimeBase``'s weighted ridge
    regression; each superpixel's weight fills its pixels. The masks are applied in one vectorised step
    rather than lime's per-sample Python loop, and every image gets its own seeded random stream.

``normalize: max_abs`` divides each image's superpixel map by its largest absolute value (Grad-CAM maps
have no common scale across models; the default for ``gradcam``), ``none`` keeps the values.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ... import relevance as registry
from ... import schema
from ...errors import XaipipeError
from .superpixels import batch_superpixel_maps, paint

log = logging.getLogger(__name__)

#: the image implementations of the one registry of relevance methods (:mod:`xaipipe.relevance`)
EXPLAINERS: dict[str, Callable[..., np.ndarray]] = registry.IMPLEMENTATIONS["image"]
#: parameters of each explainer, as declared in config/schema/xdistill.yaml (definitions/explainers)
DEFAULTS: dict[str, dict[str, Any]] = {
    name: schema.defaults("xdistill", "$definitions", "$explainers", name)
    for name in schema.node("xdistill", "$definitions", "$explainers")["properties"]}


def register_explainer(name: str):
    """``@register_explainer(name)``: ``fn(model, x, segments, targets, background, seed, **params) -> (N, H, W)``
    is the image implementation of method ``name`` (``relevance.register(name, "image")``)."""
    return registry.register(name, "image")


def _device(model: nn.Module) -> torch.device:
    for p in list(model.parameters()) + list(model.buffers()):
        return p.device
    return torch.device("cpu")


class _TargetOutput(nn.Module):
    """``model``'s output for one class as an ``(N, 1)`` tensor (probability or logit)."""

    def __init__(self, model: nn.Module, target: int, output: str):
        super().__init__()
        self.model, self.target, self.output = model, int(target), output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        if self.output == "prob":
            z = torch.softmax(z, dim=1)
        return z[:, self.target:self.target + 1]


def shap_values(model: nn.Module, x: torch.Tensor, targets: np.ndarray, background: torch.Tensor,
                algorithm: str = "gradient", nsamples: int = 50, batch_size: int = 50, output: str = "prob",
                seed: int = 0, chunk: int = 64, desc: str = "shap") -> np.ndarray:
    """Pixel SHAP values ``(N, C, H, W)`` float32 of each image for its target class."""
    import shap

    if output not in ("prob", "logit"):
        raise XaipipeError(f"shap: output must be prob or logit, got {output!r}")
    if algorithm not in ("gradient", "deep"):
        raise XaipipeError(f"shap: algorithm must be gradient or deep, got {algorithm!r}")
    model.eval()
    dev = _device(model)
    bg = background.to(dev)
    out = np.zeros(tuple(x.shape), dtype=np.float32)
    targets = np.asarray(targets, dtype=np.int64)
    jobs = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        jobs += [(int(c), idx[i:i + chunk]) for i in range(0, len(idx), chunk)]
    for k, (c, idx) in enumerate(tqdm(jobs, desc=desc, leave=False, mininterval=5.0)):
        wrapped = _TargetOutput(model, c, output).eval()
        xb = x[torch.as_tensor(idx)].to(dev)
        if algorithm == "gradient":
            explainer = shap.GradientExplainer(wrapped, bg, batch_size=int(batch_size))
            vals = explainer.shap_values(xb, nsamples=int(nsamples), rseed=int(seed) * 100003 + k)
        else:
            explainer = shap.DeepExplainer(wrapped, bg)
            vals = explainer.shap_values(xb, check_additivity=False)
        vals = np.asarray(vals[0] if isinstance(vals, list) else vals)
        if vals.ndim == x.dim() + 1:
            vals = vals[..., 0]
        out[idx] = vals.reshape((len(idx),) + tuple(x.shape[1:]))
    return out


def gradcam(model: nn.Module, x: torch.Tensor, targets: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` at ``model.cam_layer``, ReLU'd and up-sampled to the image size."""
    from captum.attr import LayerGradCam

    model.eval()
    dev = _device(model)
    cam = LayerGradCam(model, model.cam_layer)
    out = np.zeros((len(x),) + tuple(x.shape[2:]), dtype=np.float32)
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        t = torch.as_tensor(np.asarray(targets[i:i + batch_size]), dtype=torch.long, device=dev)
        a = cam.attribute(xb, target=t, relu_attributions=True)
        a = F.interpolate(a, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)
        out[i:i + batch_size] = a[:, 0].detach().cpu().numpy()
    return out


def _lime_kernel(d: np.ndarray, width: float = 0.25) -> np.ndarray:
    return np.sqrt(np.exp(-(d ** 2) / width ** 2))


def lime_weights(predict_proba: Callable[[np.ndarray], np.ndarray], image: np.ndarray, segments: np.ndarray,
                 target: int, num_samples: int = 200, hide_color: float | None = 0.0,
                 seed: int = 0) -> np.ndarray:
    """LIME weight of each superpixel ``(n_segments,)`` for one ``(C, H, W)`` image and class."""
    from lime.lime_base import LimeBase
    from sklearn.metrics import pairwise_distances

    rs = np.random.RandomState(seed)
    n_seg = int(segments.max()) + 1
    if hide_color is None:
        fudged = np.zeros_like(image)
        for s in range(n_seg):
            m = segments == s
            fudged[:, m] = image[:, m].mean(axis=1, keepdims=True)
    else:
        fudged = np.full_like(image, float(hide_color))
    data = rs.randint(0, 2, num_samples * n_seg).reshape((num_samples, n_seg))
    data[0, :] = 1
    on = data[:, segments].astype(bool)[:, None]                      # (S, 1, H, W)
    imgs = np.where(on, image[None], fudged[None]).astype(np.float32)  # (S, C, H, W)
    labels = predict_proba(imgs)
    distances = pairwise_distances(data, data[0].reshape(1, -1), metric="cosine").ravel()
    base = LimeBase(_lime_kernel, verbose=False, random_state=rs)
    _, exp, _, _ = base.explain_instance_with_data(data, labels, distances, int(target), num_features=n_seg,
                                                   feature_selection="auto")
    w = np.zeros(n_seg)
    for f, v in exp:
        w[int(f)] = v
    return w


def _normalize(maps: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return maps
    if how == "max_abs":
        m = np.abs(maps).reshape(len(maps), -1).max(1)
        m[m == 0] = 1.0
        return (maps / m[:, None, None]).astype(np.float32)
    raise XaipipeError(f"normalize must be none or max_abs, got {how!r}")


def _resolve(name: str, params: dict) -> dict:
    unknown = sorted(set(params) - set(DEFAULTS[name]))
    if unknown:
        raise XaipipeError(f"explainer {name}: unknown parameter(s) {', '.join(unknown)}; known: "
                           f"{', '.join(sorted(DEFAULTS[name]))}")
    return {**DEFAULTS[name], **params}


@register_explainer("shap")
def shap_maps(model, x, segments, targets, background, seed=0, **params) -> np.ndarray:
    p = _resolve("shap", params)
    vals = shap_values(model, x, targets, background, p["algorithm"], p["nsamples"], p["batch_size"], p["output"],
                       seed)
    return _normalize(batch_superpixel_maps(vals, segments), p["normalize"])


@register_explainer("gradcam")
def gradcam_maps(model, x, segments, targets, background=None, seed=0, **params) -> np.ndarray:
    p = _resolve("gradcam", params)
    return _normalize(batch_superpixel_maps(gradcam(model, x, targets), segments), p["normalize"])


@register_explainer("lime")
def lime_maps(model, x, segments, targets, background=None, seed=0, **params) -> np.ndarray:
    p = _resolve("lime", params)
    model.eval()
    dev = _device(model)
    bs = int(p["batch_size"])

    @torch.no_grad()
    def predict_proba(imgs: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(imgs), bs):
            z = model(torch.from_numpy(imgs[i:i + bs]).to(dev))
            out.append(torch.softmax(z, 1).cpu().numpy())
        return np.concatenate(out)

    xs = x.cpu().numpy()
    maps = np.zeros((len(xs),) + xs.shape[2:], dtype=np.float32)
    for i in tqdm(range(len(xs)), desc="lime", leave=False, mininterval=5.0):
        w = lime_weights(predict_proba, xs[i], segments[i], int(targets[i]), int(p["num_samples"]),
                         p["hide_color"], seed=int(seed) * 1_000_003 + i)
        maps[i] = paint(w, segments[i])
    return _normalize(maps, p["normalize"])


def explain_all(model: nn.Module, x: torch.Tensor, segments: np.ndarray, targets: np.ndarray,
                explainers: dict[str, dict], background: torch.Tensor, seed: int = 0,
                desc: str = "model") -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Superpixel maps ``{explainer: (N, H, W)}`` and seconds per explainer."""
    maps, seconds = {}, {}
    for name, params in explainers.items():
        if name not in EXPLAINERS:
            raise XaipipeError(f"unknown explainer {name!r}; known: {', '.join(sorted(EXPLAINERS))}")
        t0 = time.perf_counter()
        maps[name] = EXPLAINERS[name](model, x, segments, targets, background=background, seed=seed,
                                      **dict(params or {}))
        seconds[name] = round(time.perf_counter() - t0, 2)
        log.info("%s: %s explanations of %d images in %.1fs", desc, name, len(x), seconds[name])
    return maps, seconds


__all__ = ["DEFAULTS", "EXPLAINERS", "explain_all", "gradcam", "gradcam_maps", "lime_maps", "lime_weights",
           "shap_maps", "shap_values"]
