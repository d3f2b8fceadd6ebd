"""Word heatmaps of one explained document, as in the report's figures (HTML and PNG).

Source: the internship report in ``shared/papers/000_72da690358235a51.txt`` (section 6): relevance maps
are shown as the document's words on a coloured background;

* unsigned maps (RDE L1/L2, ...): white (no relevance) to red (most relevant), the relevance divided by
  its maximum (Figures 4, 7: "normalized the relevance scores (divided by maximum relevance score) and
  then took the 8th power of each relevance, effectively, zeroing out the lesser values" - ``power8``);
* signed maps (RDE L4, LIME, SHAP, ...): "low values are now in blue ...; 'neutral' values are now 0.5
  which is white" (Figure 10), i.e. a blue-white-red diverging scale with 0 at the centre.

Normalisation (:func:`display_values`): ``v = r / max|r|`` over the whole document (all-zero maps stay
white); unsigned maps clip ``v`` to ``[0, 1]`` (a negative value is shown as white); ``power8`` shows
``sign(v) |v|^8`` (sign-preserving for signed maps). Colours: ``v >= 0`` -> ``(1, 1 - v, 1 - v)`` (white to
red), ``v < 0`` -> ``(1 - |v|, 1 - |v|, 1)`` (white to blue) - matplotlib's ``bwr`` scale. Non-finite
relevance values are drawn grey.
"""

from __future__ import annotations

import html
import os
import textwrap
from typing import Sequence

import numpy as np

from .errors import XaipipeError
from .io import atomic_path

NAN_RGB = (0.8, 0.8, 0.8)


def display_values(relevance: Sequence[float] | np.ndarray, signed: bool, power8: bool = False) -> np.ndarray:
    """Relevance mapped to the colour scale: ``[-1, 1]`` for signed maps, ``[0, 1]`` otherwise (NaN kept)."""
    r = np.asarray(relevance, dtype=np.float64).reshape(-1)
    finite = np.isfinite(r)
    scale = float(np.abs(r[finite]).max()) if finite.any() else 0.0
    v = np.where(finite, r, np.nan) / (scale if scale > 0 else 1.0)
    if not signed:
        v = np.clip(v, 0.0, 1.0)
    if power8:
        v = np.sign(v) * np.abs(v) ** 8
    return v


def rgb(v: float) -> tuple[float, float, float]:
    """Colour of a display value in ``[-1, 1]`` (white at 0, red at +1, blue at -1)."""
    if not np.isfinite(v):
        return NAN_RGB
    v = float(np.clip(v, -1.0, 1.0))
    if v >= 0:
        return (1.0, 1.0 - v, 1.0 - v)
    return (1.0 + v, 1.0 + v, 1.0)


def hex_colour(c: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{int(round(255 * x)):02x}" for x in c)


def _text_colour(v: float) -> str:
    return "#ffffff" if np.isfinite(v) and abs(v) > 0.6 else "#000000"


def _check(tokens: Sequence[str], relevance) -> tuple[list[str], np.ndarray]:
    tokens = [str(t) for t in tokens]
    r = np.asarray(relevance, dtype=np.float64).reshape(-1)
    if len(tokens) != len(r):
        raise XaipipeError(f"heatmap: {len(tokens)} words but {len(r)} relevance values")
    return tokens, r


def _scale_text(signed: bool, scale: float) -> tuple[str, str, str]:
    """Labels of the legend bar's left end, centre and right end (display values)."""
    if signed:
        return f"-1 (r = -{scale:.3g})", "0", f"+1 (r = +{scale:.3g})"
    return "0", "", f"1 (r = {scale:.3g})"


def render_html(tokens: Sequence[str], relevance, signed: bool, power8: bool = False,
                title: str = "relevance heatmap") -> str:
    """A standalone HTML page: the words as ``<span class="w">`` coloured by relevance, with a legend."""
    tokens, r = _check(tokens, relevance)
    v = display_values(r, signed, power8)
    finite = np.isfinite(r)
    scale = float(np.abs(r[finite]).max()) if finite.any() else 0.0
    spans = []
    for i, (t, ri, vi) in enumerate(zip(tokens, r, v)):
        tip = f"{i}: {t} = {ri:.4g}" + (f" (shown {vi:.3g})" if np.isfinite(vi) else "")
        spans.append(
            f'<span class="w" style="background:{hex_colour(rgb(vi))};color:{_text_colour(vi)}" '
            f'title="{html.escape(tip, quote=True)}">{html.escape(t)}</span>')
    if signed:
        stops = ", ".join(hex_colour(rgb(x)) for x in (-1.0, -0.5, 0.0, 0.5, 1.0))
        what = "signed: blue = against the target class, white = neutral, red = for it"
    else:
        stops = ", ".join(hex_colour(rgb(x)) for x in (0.0, 0.5, 1.0))
        what = "unsigned: white = irrelevant, red = most relevant"
    left, mid, right = _scale_text(signed, scale)
    norm = "relevance / max|r|" + ((", then 8th power" + (" (sign kept)" if signed else "")) if power8 else "")
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 1em auto; }}
.doc {{ line-height: 1.9; font-family: monospace; font-size: 14px; overflow-wrap: anywhere; }}
.w {{ padding: 1px 2px; border-radius: 2px; }}
.legend {{ margin: 0.5em 0 1em 0; font-size: 12px; }}
.bar {{ width: 20em; height: 0.9em; border: 1px solid #888; background: linear-gradient(to right, {stops}); }}
.ends {{ width: 20em; display: flex; justify-content: space-between; }}
</style>
</head>
<body>
<h3>{esc(title)}</h3>
<div class="legend">
<div>{esc(what)}; colour = {esc(norm)}; {len(tokens)} words</div>
<div class="bar"></div>
<div class="ends"><span>{esc(left)}</span><span>{esc(mid)}</span><span>{esc(right)}</span></div>
</div>
<div class="doc">
{" ".join(spans)}
</div>
</body>
</html>
"""


def write_html(path: str | os.PathLike, tokens: Sequence[str], relevance, signed: bool, power8: bool = False,
               title: str = "relevance heatmap") -> None:
    """Write :func:`render_html` to ``path`` (UTF-8, atomically)."""
    page = render_html(tokens, relevance, signed, power8=power8, title=title)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _cmap(signed: bool):
    from matplotlib.colors import LinearSegmentedColormap

    if signed:
        return LinearSegmentedColormap.from_list("xaipipe_bwr", [rgb(-1.0), rgb(0.0), rgb(1.0)])
    return LinearSegmentedColormap.from_list("xaipipe_wr", [rgb(0.0), rgb(1.0)])


def render_png(path: str | os.PathLike, tokens: Sequence[str], relevance, signed: bool, power8: bool = False,
               title: str = "relevance heatmap", max_words: int = 400, line_chars: int = 100,
               dpi: int = 110) -> None:
    """Draw the words in wrapped lines on coloured boxes with a colour bar; write a PNG atomically.

    Words are laid out on a monospace grid of ``line_chars`` characters per line; only the first
    ``max_words`` words are drawn (a note says how many were left out), but the normalisation uses the
    whole document so the colours match :func:`render_html`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    tokens, r = _check(tokens, relevance)
    if max_words < 1 or line_chars < 8:
        raise XaipipeError("render_png: max_words must be >= 1 and line_chars >= 8")
    v = display_values(r, signed, power8)
    finite = np.isfinite(r)
    scale = float(np.abs(r[finite]).max()) if finite.any() else 0.0
    shown = min(len(tokens), max_words)

    # layout in character cells: (line, column, text, value)
    cells, line, col = [], 0, 0
    for t, vi in zip(tokens[:shown], v[:shown]):
        t = t if len(t) <= line_chars else t[: line_chars - 1] + "\u2026"
        if col > 0 and col + len(t) > line_chars:
            line, col = line + 1, 0
        cells.append((line, col, t, vi))
        col += len(t) + 1
    note = f"\u2026 ({len(tokens) - shown} more words not shown)" if shown < len(tokens) else ""
    n_lines = line + 1 + (1 if note else 0)

    font_pt = 10.0
    char_in = 0.6021 * font_pt / 72  # advance of DejaVu Sans Mono
    line_in = 1.75 * font_pt / 72
    margin = 0.3
    title_lines = textwrap.wrap(title, width=int(line_chars * 0.9)) or [""]
    title_in = 0.25 * len(title_lines) + 0.15
    bar_in = 0.75
    width = line_chars * char_in + 2 * margin
    height = title_in + n_lines * line_in + bar_in + 2 * margin

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.text(0.5, 1 - margin / height, "\n".join(title_lines), ha="center", va="top", fontsize=11,
             parse_math=False)
    ax = fig.add_axes((margin / width, (margin + bar_in) / height, line_chars * char_in / width,
                       n_lines * line_in / height))
    ax.set_xlim(0, line_chars)
    ax.set_ylim(n_lines, 0)
    ax.axis("off")
    for ln, c, t, vi in cells:
        ax.add_patch(Rectangle((c - 0.15, ln + 0.08), len(t) + 0.3, 0.84, facecolor=rgb(vi), edgecolor="none"))
        ax.text(c, ln + 0.5, t, ha="left", va="center_baseline", fontsize=font_pt, family="DejaVu Sans Mono",
                color=_text_colour(vi), parse_math=False)
    if note:
        ax.text(0, n_lines - 0.5, note, ha="left", va="center_baseline", fontsize=font_pt * 0.9,
                style="italic", color="#555555", parse_math=False)

    cax = fig.add_axes((0.25, (margin + 0.3) / height, 0.5, 0.15 / height))
    norm = Normalize(-1.0, 1.0) if signed else Normalize(0.0, 1.0)
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=_cmap(signed)), cax=cax, orientation="horizontal")
    cb.set_ticks([-1.0, 0.0, 1.0] if signed else [0.0, 0.5, 1.0])
    label = "relevance / max|r|" + ((", then 8th power" + (" (sign kept)" if signed else "")) if power8 else "")
    cb.set_label(f"{label}   (max|r| = {scale:.3g}; {len(tokens)} words)", fontsize=8)
    cb.ax.tick_params(labelsize=7)

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
