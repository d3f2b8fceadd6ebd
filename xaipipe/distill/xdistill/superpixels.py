"""The "new representation for explanations" (XDistillation section III-A1, Figures 5-7).

Raw SHAP maps are sparse and spread over the colour channels, which a small autoencoder cannot imitate.
The image is therefore cut into ``k`` superpixels by SLIC (Achanta et al.; "a local k-means of 5-D pixels"
(colour + position); the paper uses ``k = 19``) and the SHAP values are **summed per superpixel** (over
its pixels and all channels). The representation is the image-sized map in which every pixel carries the
sum of its superpixel, ``R(x)[p] = sum_{q in S(p)} sum_c e(x)[c, q]``, so that a superpixel's value is its
total effect on the model's output. The same transform is applied to Grad-CAM maps and LIME uses the SLIC
segments directly (section IV-B), so all explainers are compared on the same superpixels.

``slic_segments`` wraps :func:`skimage.segmentation.slic` (``start_label=0``; labels are renumbered to
``0..n-1``); for grayscale images ``compactness`` is on the intensity scale of the image in [0, 1] (0.1
gives about 19 segments that follow MNIST strokes), for RGB images on the Lab scale (skimage's default 10).
"""

from __future__ import annotations

import numpy as np

from ...errors import XaipipeError


def slic_segments(image: np.ndarray, n_segments: int = 19, compactness: float = 0.1, sigma: float = 0.0,
                  seed: int | None = None) -> np.ndarray:
    """SLIC labels ``(H, W)`` int32 in ``0..n-1`` of one image: ``(H, W)`` grayscale, ``(H, W, C)`` or
    ``(C, H, W)`` with ``C`` in (1, 3), values in [0, 1]. ``seed`` is unused (SLIC is deterministic)."""
    from skimage.segmentation import slic

    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise XaipipeError(f"slic_segments: expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    labels = slic(img, n_segments=int(n_segments), compactness=float(compactness), sigma=float(sigma),
                  start_label=0, channel_axis=None if img.ndim == 2 else -1)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(img.shape[:2]).astype(np.int32)


def batch_segments(images: np.ndarray, **kwargs) -> np.ndarray:
    """:func:`slic_segments` of each image in ``(N, ...)``; ``(N, H, W)`` int32."""
    return np.stack([slic_segments(im, **kwargs) for im in images]) if len(images) else \
        np.zeros((0,) + tuple(np.asarray(images).shape[-2:]), np.int32)


def _spatial(attr: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Sum channels: ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)`` -> ``(H, W)`` matching ``segments``."""
    a = np.asarray(attr, dtype=np.float64)
    hw = segments.shape
    if a.shape == hw:
        return a
    if a.ndim == 3 and a.shape[1:] == hw:
        return a.sum(0)
    if a.ndim == 3 and a.shape[:2] == hw:
        return a.sum(-1)
    raise XaipipeError(f"attribution of shape {a.shape} does not match segments of shape {hw}")


def segment_sums(attr: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Sum of ``attr`` (over pixels and channels) in each superpixel: ``(n_segments,)`` float64, where
    ``n_segments = segments.max() + 1``."""
    segments = np.asarray(segments)
    a = _spatial(attr, segments)
    return np.bincount(segments.ravel(), weights=a.ravel(), minlength=int(segments.max()) + 1)


def segment_means(attr: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Mean of a pixel map in each superpixel (for maps that are constant per segment: its value)."""
    segments = np.asarray(segments)
    a = _spatial(attr, segments)
    n = np.bincount(segments.ravel(), minlength=int(segments.max()) + 1)
    s = np.bincount(segments.ravel(), weights=a.ravel(), minlength=len(n))
    return np.divide(s, n, out=np.zeros_like(s), where=n > 0)


def paint(values: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Image-sized map carrying each superpixel's value at its pixels."""
    return np.asarray(values)[np.asarray(segments)]


def superpixel_map(attr: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The paper's representation ``R``: each pixel = the sum of ``attr`` over its superpixel. float32."""
    return paint(segment_sums(attr, segments), segments).astype(np.float32)


def batch_superpixel_maps(attrs: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """:func:`superpixel_map` of each ``(attr, segments)`` pair; ``(N, H, W)`` float32."""
    if len(attrs) != len(segments):
        raise XaipipeError(f"{len(attrs)} attributions but {len(segments)} segmentations")
    return np.stack([superpixel_map(a, s) for a, s in zip(attrs, segments)]) if len(attrs) else \
        np.zeros(segments.shape, np.float32)
