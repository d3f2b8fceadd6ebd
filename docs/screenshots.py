"""The README's screenshots of the results pages, rendered by headless Chromium from a finished run.

    python docs/screenshots.py RESULTS_DIR [--dataset planted --model teacher] [--out docs]

writes ``docs/index.png`` (the top of ``RESULTS_DIR/index.html``) and ``docs/compare_page.png`` (the
comparison page of one explained model, in the report's 8th-power display, on its first correctly classified
document). The PNGs are reduced to 256 colours (Pillow) to stay small; a browser problem (console error,
failed load) stops the script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xaipipe.browser import Chromium  # noqa: E402


def shrink(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--dataset", default="planted")
    ap.add_argument("--model", default="teacher")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    a = ap.parse_args(argv)
    index = a.results / "index.html"
    page = a.results / a.dataset / "compare" / a.model / "index.html"
    with Chromium() as b:
        tab = b.page(a.width, a.height)
        tab.goto(index)
        shot = tab.screenshot(a.out / "index.png")
        print(f"{shot}: {shrink(shot) / 1e3:.0f} kB")
        tab.goto(page.resolve().as_uri() + "#display=p8")
        tab.wait_for("window.xaiCompare && xaiCompare.ready")
        shot = tab.screenshot(a.out / "compare_page.png")
        print(f"{shot}: {shrink(shot) / 1e3:.0f} kB")
        if tab.problems:
            print("browser problems:", *tab.problems, sep="\n  ")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
