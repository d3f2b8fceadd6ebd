"""The comparison page (one document under every method, issue #18): its data files, and the page in a real
headless Chromium opened from file:// (skipped where Chromium is not installed)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest

from xaipipe.browser import find_chromium
from xaipipe.compare import BASELINE, synthetic_outputs, write_compare
from xaipipe.errors import XaipipeError
from xaipipe.render import _text_colour, display_values, hex_colour, rgb

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no Chromium on this machine (apt-get install chromium) for the browser checks")


def _catalogue(page: Path) -> dict:
    m = re.search(r'<script type="application/json" id="catalogue">(.*?)</script>', page.read_text(), re.S)
    return json.loads(m.group(1))


def _payload(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("xaiCompare.receive(") and text.rstrip().endswith(");")
    return json.loads(text[len("xaiCompare.receive("):text.rstrip().rindex(")")])


@pytest.fixture
def small(tmp_path):
    res = tmp_path / "results"
    kw = synthetic_outputs(res, n_docs=8, n_variants=4, n_words=30, n_classes=3, K=5)
    page = res / "planted" / "compare" / "teacher" / "index.html"
    (res / "index.html").write_text("<html></html>")  # the results index the page links back to
    info = write_compare(page, page.parent / "docs", **kw,
                         links={"results index": "../../../index.html",
                                "ranking": "../../evaluate/teacher/ranking.csv"})
    return res, page, kw, info


def test_compare_files_catalogue_and_payloads(small):
    res, page, kw, info = small
    assert info["n_docs"] == 8 and info["n_variants"] == 4
    cat = _catalogue(page)
    ranking = pd.read_csv(kw["ranking"]).set_index("variant")
    # rows in ranking order, the baseline as its own curve-only row; signed = a negative value in some map
    names = [v["name"] for v in cat["variants"]]
    assert names == [v for v in ranking.index if v != BASELINE]
    assert {v["name"] for v in cat["variants"] if v["signed"]} == {"method_00", "method_03"}
    assert cat["baseline"] == BASELINE and cat["planted"] is True and cat["K"] == 5
    assert cat["classes"] == ["class 0", "class 1", "class 2"]
    assert {"accuracy/zero", "probability/gaussian", "misclassified_changed/zero"} <= set(cat["curves"])
    docs = pd.read_parquet(kw["documents"])
    assert [d["id"] for d in cat["docs"]] == list(docs["id"]) and len(list((page.parent / "docs").glob("*.js"))) == 8
    d = cat["docs"][2]
    p = _payload(page.parent / d["f"])
    assert p["id"] == d["id"] and p["tokens"] == list(docs["tokens"][2]) and len(p["maps"]) == 4
    rel = pd.read_parquet(kw["relevance"][names[0]])
    np.testing.assert_allclose(p["maps"][0], rel["relevance"][2], rtol=1e-3)  # 4 significant digits
    # the planted words each method ranks on top, counted with full precision
    planted = np.asarray(docs["planted"][2], dtype=bool)
    top = np.argsort(-np.asarray(rel["relevance"][2]), kind="stable")[: planted.sum()]
    assert p["hits"][0] == planted[top].sum() and d["np"] == planted.sum()
    # per curve one entry per variant plus the baseline; NaN (a correct document has no flip curve) is null
    assert len(p["curves"]["probability/zero"]) == 5 and p["curves"]["misclassified_changed/zero"][0] is None
    base = pd.read_parquet(kw["per_doc"][BASELINE])
    np.testing.assert_allclose(p["curves"]["probability/zero"][4], base["probability/zero"][2], atol=1e-4)


def test_compare_refuses_mismatched_inputs(small, tmp_path):
    res, page, kw, _ = small
    rel_path = Path(kw["relevance"]["method_01"])
    rel = pd.read_parquet(rel_path)
    rel.iloc[1:].to_parquet(rel_path, index=False)  # one document less
    with pytest.raises(XaipipeError, match="method_01.*no relevance for document"):
        write_compare(tmp_path / "o" / "index.html", tmp_path / "o" / "docs", **kw)
    rel.loc[0, "relevance"] = rel.loc[0, "relevance"][:-1]
    rel.to_parquet(rel_path, index=False)
    with pytest.raises(XaipipeError, match="29 relevance values for 30 words"):
        write_compare(tmp_path / "o" / "index.html", tmp_path / "o" / "docs", **kw)
    assert not (tmp_path / "o" / "docs").exists() and not (tmp_path / "o" / "index.html").exists()


def _local(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def check_links(page) -> list[str]:
    """Every href/src of the open page (anchors within the page aside) that does not exist on disk."""
    urls = page.eval("(() => { const here = location.href.split('#')[0]; return [...document.querySelectorAll("
                     "'a[href],img[src],script[src],link[href]')].map(e => e.href || e.src)"
                     ".filter(u => u.split('#')[0] !== here); })()")
    return [u for u in urls if u.startswith("file:") and not _local(u.split("#")[0]).exists()]


def pick(page, element: str, value: str, event: str = "change") -> None:
    """Set a control of the page as a person would (value, then the event the page listens to)."""
    page.eval(f"{{ const e = document.getElementById({json.dumps(element)}); e.value = {json.dumps(value)}; "
              f"e.dispatchEvent(new Event({json.dumps(event)})); }}")


@needs_chromium
def test_compare_page_in_chromium(small):
    from xaipipe.browser import Chromium

    res, page, kw, _ = small
    cat = _catalogue(page)
    docs = pd.read_parquet(kw["documents"])
    with Chromium() as b:
        tab = b.page(1200, 900)
        tab.goto(page)
        tab.wait_for("window.xaiCompare && xaiCompare.ready")
        first = cat["docs"][0]["id"]
        assert tab.eval("xaiCompare.shown") == first
        rows = tab.eval("[...document.querySelectorAll('#rows tr')].map(r => r.dataset.variant)")
        assert rows == [v["name"] for v in cat["variants"]] + [BASELINE]
        # lazily loaded: only the shown document's file, from file://
        loaded = [u for u in tab.loaded_urls if "/docs/" in u]
        assert [Path(_local(u)).name for u in loaded] == [Path(cat["docs"][0]["f"]).name]
        # the colours are xaipipe.render's: every word of the first row, raw and 8th power
        rel = np.asarray(pd.read_parquet(kw["relevance"][rows[0]])["relevance"][0], dtype=float)
        signed = cat["variants"][0]["signed"]
        for display, p8 in (("raw", False), ("p8", True)):
            tab.eval(f"document.querySelector('input[name=display][value={display}]').click()")
            got = tab.eval("[...document.querySelectorAll('#rows tr:first-child span.w')].map(s => getComputedStyle(s).backgroundColor)")
            want = [hex_colour(rgb(v)) for v in display_values(rel, signed, p8)]
            assert len(got) == len(want) == len(rel)
            for g, w in zip(got, want):
                rgb_got = [int(x) for x in re.findall(r"\d+", g)[:3]]
                rgb_want = [int(w[i:i + 2], 16) for i in (1, 3, 5)]
                assert max(abs(a - c) for a, c in zip(rgb_got, rgb_want)) <= 1, (display, g, w)
            text = tab.eval("[...document.querySelectorAll('#rows tr:first-child span.w')].map(s => getComputedStyle(s).color)")
            white = [_text_colour(v) == "#ffffff" for v in display_values(rel, signed, p8)]
            assert [t == "rgb(255, 255, 255)" for t in text] == white, display
        # a word's value as its tooltip, made when the pointer is over it
        tip = tab.eval("(() => { const w = document.querySelectorAll('#rows tr:first-child span.w')[2]; "
                       "w.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); return w.title; })()")
        assert tip.startswith(f"2: {docs['tokens'][0][2]} = ")
        assert float(tip.rsplit("= ", 1)[1]) == pytest.approx(rel[2], rel=1e-3)  # DIGITS significant digits
        assert "display=p8" in tab.eval("location.hash")
        # planted words marked in every row; the page escapes words (no markup from the data)
        n_planted = int(np.asarray(docs["planted"][0]).sum())
        assert tab.eval("document.querySelectorAll('#rows tr:first-child span.w.pl').length") == n_planted
        assert tab.eval("document.querySelectorAll('#rows .doc b').length") == 0
        # the picker changes what is shown: correct/misclassified, class, id search, prev/next
        pick(tab, "set", "misclassified")
        wrong = next(d for d in cat["docs"] if d["set"] == "misclassified")
        tab.wait_for(f"xaiCompare.shown === {json.dumps(wrong['id'])}")
        assert "misclassified" in tab.eval("document.getElementById('docinfo').textContent")
        assert "prediction change" in tab.eval("document.querySelector('#rows td.side').textContent")
        pick(tab, "set", "")
        target = cat["docs"][5]
        pick(tab, "cls", str(target["label"]))
        pick(tab, "q", target["id"][-2:], "input")
        tab.wait_for(f"xaiCompare.shown === {json.dumps(target['id'])}")
        assert tab.eval("document.getElementById('doclist').options.length") == 1
        assert cat["classes"][target["label"]] in tab.eval("document.getElementById('docinfo').textContent")
        words = tab.eval("[...document.querySelectorAll('#rows tr:first-child span.w')].map(s => s.textContent)")
        assert words == list(docs["tokens"][5])
        # a link with a document opens it directly (fresh tab)
        other = cat["docs"][3]["id"]
        tab2 = b.page(1200, 900)
        tab2.goto(page.as_uri() + f"#doc={other}&display=p8&mode=gaussian&order=config")
        tab2.wait_for(f"window.xaiCompare && xaiCompare.shown === {json.dumps(other)}")
        assert tab2.eval("document.getElementById('mode').value") == "gaussian"
        rows2 = tab2.eval("[...document.querySelectorAll('#rows tr')].map(r => r.dataset.variant)")
        assert rows2 == sorted(rows2[:-1]) + [BASELINE]  # configured order: method_00, method_01, ...
        third = cat["docs"][6]["id"]  # an edited URL (or a link within the page) switches too
        tab2.eval(f"location.hash = 'doc={third}&display=raw&mode=zero&order=ranking'")
        tab2.wait_for(f"xaiCompare.shown === {json.dumps(third)}")
        assert tab2.eval("document.querySelector('input[name=display][value=raw]').checked")
        assert tab2.eval("document.querySelector('#rows tr').dataset.variant") == rows[0]
        time.sleep(0.2)
        assert tab.problems == [] and tab2.problems == [], tab.problems + tab2.problems
        assert check_links(tab) == []


@needs_chromium
def test_compare_page_reports_a_missing_document_file(small):
    from xaipipe.browser import Chromium

    res, page, kw, _ = small
    cat = _catalogue(page)
    (page.parent / cat["docs"][1]["f"]).unlink()
    with Chromium() as b:
        tab = b.page()
        tab.goto(page.as_uri() + f"#doc={cat['docs'][1]['id']}")
        tab.wait_for("document.getElementById('status').textContent.includes('could not load')")
        assert any("ERR_FILE_NOT_FOUND" in p for p in tab.problems)


@needs_chromium
def test_140_documents_by_23_methods_open_in_seconds(tmp_path):
    """Issue #18: the default run's size (140 documents x 23 methods, 400 words each) opens within a few
    seconds: the page carries the catalogue, each document is loaded when it is shown."""
    from xaipipe.browser import Chromium

    res = tmp_path / "results"
    kw = synthetic_outputs(res, n_docs=140, n_variants=23, n_words=400)
    page = res / "planted" / "compare" / "teacher" / "index.html"
    info = write_compare(page, page.parent / "docs", **kw)
    assert info["bytes_page"] < 200_000 and info["max_doc_bytes"] < 150_000, info
    with Chromium() as b:
        tab = b.page(1400, 1000)
        t0 = time.perf_counter()
        tab.goto(page)
        tab.wait_for("window.xaiCompare && xaiCompare.ready", poll=0.01)
        wall = time.perf_counter() - t0
        ready_ms = tab.eval("xaiCompare.readyAt")
        assert tab.eval("document.querySelectorAll('#rows span.w').length") == 23 * 400
        t1 = time.perf_counter()
        tab.eval("xaiCompare.show('doc0077')")
        switch = time.perf_counter() - t1
        assert tab.eval("xaiCompare.shown") == "doc0077" and tab.problems == []
    print(f"\n140 x 23 x 400: first document shown {ready_ms:.0f} ms after navigation start "
          f"({wall:.2f} s wall), next document {switch * 1000:.0f} ms")
    assert wall < 10 and switch < 5  # "a few seconds" with room for a busy CI machine
