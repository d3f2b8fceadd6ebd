"""Word heatmaps (xaipipe.render): escaped words in order, colour scales, 8th-power display, atomic
HTML/PNG files."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from xaipipe.errors import XaipipeError
from xaipipe.render import display_values, render_html, render_png, rgb, write_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOKENS = ["the", "<script>alert(1)</script>", "a&b", '"quoted"', "$5$", "caf\u00e9", "it's", "hockey"]
SPAN = re.compile(r'<span class="w" style="background:(#[0-9a-f]{6});color:#[0-9a-f]{6}" title="[^"]*">(.*?)</span>')


def spans(page: str) -> list[tuple[str, str]]:
    """(background colour, escaped word) of every word span, in page order."""
    return SPAN.findall(page)


def rgb_of(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_html_has_every_word_escaped_in_order():
    rel = np.linspace(0, 1, len(TOKENS))
    page = render_html(TOKENS, rel, signed=False, title="doc <1> & co")
    found = spans(page)
    assert [w for _, w in found] == [html.escape(t) for t in TOKENS]
    assert "<script>" not in page
    assert "doc &lt;1&gt; &amp; co" in page and "doc <1>" not in page


def test_html_unsigned_colours():
    rel = np.array([0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0])
    found = spans(render_html(TOKENS, rel, signed=False))
    colours = [c for c, _ in found]
    assert colours[0] == "#ffffff"  # zero relevance: white
    assert colours[-1] == "#ff0000"  # the maximum: full red
    assert colours[1] != colours[0] and colours[1] != colours[-1]
    r, g, b = rgb_of(colours[1])
    assert r == 255 and g == b < 255  # a light red


def test_html_signed_uses_blue_for_negative():
    rel = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 0.0, 0.0])
    colours = [c for c, _ in spans(render_html(TOKENS, rel, signed=True))]
    assert colours[0] == "#0000ff" and colours[5] == "#ff0000" and colours[2] == "#ffffff"
    r, g, b = rgb_of(colours[1])
    assert b == 255 and r == g < 255
    r, g, b = rgb_of(colours[3])
    assert r == 255 and g == b < 255
    # the unsigned scale shows negative values as white, not blue
    assert [c for c, _ in spans(render_html(TOKENS, rel, signed=False))][0] == "#ffffff"


def test_power8_display():
    rel = np.array([0.5, -0.5, 1.0, -1.0])
    np.testing.assert_allclose(display_values(rel, signed=True, power8=True), [0.5 ** 8, -(0.5 ** 8), 1, -1])
    np.testing.assert_allclose(display_values(rel, signed=False, power8=True), [0.5 ** 8, 0, 1, 0])
    np.testing.assert_allclose(display_values(rel * 10, signed=True), [0.5, -0.5, 1, -1])
    plain = [c for c, _ in spans(render_html(["x", "y", "z", "w"], rel, signed=True))]
    p8 = [c for c, _ in spans(render_html(["x", "y", "z", "w"], rel, signed=True, power8=True))]
    assert p8[0] != plain[0] and rgb_of(p8[0])[1] > 250  # half relevance nearly white after ^8
    assert rgb_of(p8[1])[2] == 255 and rgb_of(p8[1])[0] < 255  # still (faint) blue: sign kept
    assert p8[2] == plain[2] == "#ff0000" and p8[3] == plain[3] == "#0000ff"


def test_zero_and_nan_maps():
    assert np.all(display_values(np.zeros(3), signed=True) == 0)
    v = display_values(np.array([1.0, np.nan, -2.0]), signed=True)
    assert np.isnan(v[1]) and v[2] == -1
    assert rgb(float("nan")) != rgb(0.0)


def test_write_html_atomic(tmp_path):
    out = tmp_path / "maps" / "doc.html"
    write_html(out, TOKENS, np.arange(len(TOKENS), dtype=float), signed=False, power8=True, title="t")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "caf\u00e9" in text
    assert sorted(p.name for p in out.parent.iterdir()) == ["doc.html"]


def test_length_mismatch_raises_and_writes_nothing(tmp_path):
    with pytest.raises(XaipipeError):
        write_html(tmp_path / "a.html", TOKENS, [1.0], signed=False)
    with pytest.raises(XaipipeError):
        render_png(tmp_path / "a.png", TOKENS, [1.0], signed=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signed,power8", [(False, False), (True, True)])
def test_png_written_valid_no_temp_files(tmp_path, signed, power8):
    tokens = TOKENS + [f"w{i}" for i in range(40)] + ["x" * 150]
    rel = np.sin(np.arange(len(tokens)))
    out = tmp_path / "png" / "doc.png"
    render_png(out, tokens, rel, signed=signed, power8=power8, title="a $title$ with <odd> chars " * 4,
               max_words=30)
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    assert sorted(p.name for p in out.parent.iterdir()) == ["doc.png"]


def test_png_colours_follow_relevance(tmp_path):
    """Pixels: a fully relevant word paints a box of pure red, a negative one of pure blue (compared
    with an all-zero map, whose only saturated pixels are in the colour bar)."""
    import matplotlib.image as mpimg

    def counts(rel):
        out = tmp_path / "doc.png"
        render_png(out, ["neutral", "positive", "negative"], rel, signed=True, title="t")
        flat = mpimg.imread(out)[..., :3].reshape(-1, 3)
        return [int(np.all(np.abs(flat - c) < 0.02, axis=1).sum()) for c in ([1, 0, 0], [0, 0, 1])]

    red, blue = counts([0.0, 1.0, -1.0])
    red0, blue0 = counts([0.0, 0.0, 0.0])
    assert red - red0 > 100 and blue - blue0 > 100
    assert [p.name for p in tmp_path.iterdir()] == ["doc.png"]
