"""How fast the comparison page opens in headless Chromium, at the default run's size or larger.

Writes synthetic stage outputs (``xaipipe.compare.synthetic_outputs``: documents x methods x words, planted
flags, curves, ranking), builds the page with ``xaipipe.compare.write_compare`` and opens it from file://
``--repeat`` times in fresh tabs, measuring

* ``first``: navigation start to the first document drawn under every method (``xaiCompare.readyAt``, the
  page's own ``performance.now()``), and the wall time around it;
* ``switch``: showing another document (its ``docs/<n>.js`` loaded and drawn), median over 20 documents;
* ``display``: switching raw <-> 8th power (every row redrawn).

    python bench/bench_compare_page.py                       # 140 documents x 23 methods x 400 words
    python bench/bench_compare_page.py --docs 1000 --words 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xaipipe.browser import Chromium  # noqa: E402
from xaipipe.compare import synthetic_outputs, write_compare  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=140)
    ap.add_argument("--methods", type=int, default=23)
    ap.add_argument("--words", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        kw = synthetic_outputs(Path(tmp) / "results", n_docs=a.docs, n_variants=a.methods, n_words=a.words)
        page = Path(tmp) / "results" / "planted" / "compare" / "teacher" / "index.html"
        t1 = time.perf_counter()
        info = write_compare(page, page.parent / "docs", **kw)
        build = time.perf_counter() - t1
        print(f"{a.docs} documents x {a.methods} methods x {a.words} words: synthetic data {t1 - t0:.1f} s, "
              f"page built in {build:.1f} s; index.html {info['bytes_page'] / 1e3:.0f} kB, "
              f"documents {info['bytes_docs'] / 1e6:.1f} MB (largest {info['max_doc_bytes'] / 1e3:.0f} kB)")
        firsts, walls, switches, displays = [], [], [], []
        with Chromium() as b:
            print(b.version)
            for _ in range(a.repeat):
                tab = b.page(1400, 1000)
                w0 = time.perf_counter()
                tab.goto(page)
                tab.wait_for("window.xaiCompare && xaiCompare.ready", poll=0.005)
                walls.append(time.perf_counter() - w0)
                firsts.append(tab.eval("xaiCompare.readyAt") / 1000)
                for k in range(1, 21):
                    doc = kw_id(k * a.docs // 21)
                    s0 = time.perf_counter()
                    tab.eval(f"xaiCompare.show('{doc}')")
                    switches.append(time.perf_counter() - s0)
                for mode in ("p8", "raw"):
                    d0 = time.perf_counter()
                    tab.eval(f"document.querySelector('input[name=display][value={mode}]').click(); "
                             "document.body.offsetHeight")  # forces the layout of the redrawn rows
                    displays.append(time.perf_counter() - d0)
                if tab.problems:
                    print("browser problems:", tab.problems)
                    return 1
                tab.send("Page.close")
    med = statistics.median
    print(f"first document shown: median {med(firsts) * 1000:.0f} ms after navigation start "
          f"(max {max(firsts) * 1000:.0f} ms); wall {med(walls):.2f} s (max {max(walls):.2f} s) over {a.repeat} opens")
    print(f"another document: median {med(switches) * 1000:.0f} ms (max {max(switches) * 1000:.0f} ms); "
          f"raw <-> 8th power: median {med(displays) * 1000:.0f} ms")
    return 0


def kw_id(k: int) -> str:
    return f"doc{k:04d}"  # the ids synthetic_outputs writes


if __name__ == "__main__":
    sys.exit(main())
