"""Figures of the XDistillation stage: example superpixel explanations of the teacher beside every student
(the paper's Figures 1, 9 and 11) and the CAE's approximation of the teacher's SHAP representation
(Figures 4 and 6). Signed maps use a blue-white-red scale symmetric around 0 per image row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _show_image(ax, img: np.ndarray, segments: np.ndarray | None = None) -> None:
    from skimage.segmentation import mark_boundaries

    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if segments is not None:
        f = max(1, 128 // max(segments.shape))  # up-sample so that boundaries are thin lines
        rgb = np.stack([img] * 3, -1) if img.ndim == 2 else img
        rgb = rgb.repeat(f, 0).repeat(f, 1)
        img = mark_boundaries(np.clip(rgb, 0, 1), segments.repeat(f, 0).repeat(f, 1), color=(1, 0.8, 0))
    ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=0, vmax=1)


def explanation_grid(images: np.ndarray, segments: np.ndarray, columns: dict[str, np.ndarray], title: str,
                     path: str | Path, subtitles: dict[str, list[str]] | None = None) -> None:
    """Rows = images; first column the image with its SLIC boundaries, then one map per model, each on
    its own symmetric scale ``[-max|v|, max|v|]`` (the scales of different models are not comparable)."""
    plt = _plt()
    n, names = len(images), list(columns)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(1.7 * (len(names) + 1), 1.8 * n + 0.5), squeeze=False)
    for r in range(n):
        _show_image(axes[r, 0], images[r], segments[r])
        for c, k in enumerate(names, start=1):
            vmax = float(np.abs(columns[k][r]).max()) or 1.0
            axes[r, c].imshow(columns[k][r], cmap="bwr", vmin=-vmax, vmax=vmax)
            if subtitles and k in subtitles:
                axes[r, c].set_xlabel(subtitles[k][r], fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_title("image + SLIC", fontsize=8)
    for c, k in enumerate(names, start=1):
        axes[0, c].set_title(k, fontsize=8)
    fig.suptitle(title + "\nred +, blue -; each panel scaled to its largest |value|", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


__all__ = ["explanation_grid"]
