"""Compare two runs' result trees file by file: the behaviour check of a refactoring.

    python bench/compare_runs.py BEFORE/results AFTER/results [--ignore timing.json ...]

Run the same config (e.g. ``config/tiny.yaml``) on the commit before and the commit after a change, each
in its own working directory (``snakemake --directory DIR --configfile config/tiny.yaml``), then compare
the two ``results/`` folders. Every file present in either tree is listed as identical, different or
missing on one side; ``timing.json`` (wall times) is ignored by default, as are ``logs/`` and
``benchmarks/``, which live outside ``results/``. Exit status 0 only when every compared file is
byte-identical and no file is missing: the README's "Reproducibility" section says which files are
byte-identical between two runs on the same machine, thread count and library versions.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

DEFAULT_IGNORE = ("timing.json",)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files(root: Path, ignore: tuple[str, ...]) -> dict[str, Path]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(fnmatch(p.name, pat) or fnmatch(rel, pat) for pat in ignore):
            out[rel] = p
    return out


def _drop_timing(obj: Any) -> Any:
    """``obj`` without the wall-time fields (keys containing ``seconds``) at any depth."""
    if isinstance(obj, dict):
        return {k: _drop_timing(v) for k, v in obj.items() if "seconds" not in str(k)}
    if isinstance(obj, list):
        return [_drop_timing(v) for v in obj]
    return obj


def same_but_timing(a: Path, b: Path) -> bool:
    """Whether two JSON, CSV or checkpoint (``.pt``, read with the safe unpickler) files are equal once the
    wall-time fields are left out: JSON keys and CSV columns whose name contains ``seconds``; tensors are
    compared exactly. Other file types: False (compared byte by byte only)."""
    import json

    if a.suffix == ".json":
        return _drop_timing(json.loads(a.read_text())) == _drop_timing(json.loads(b.read_text()))
    if a.suffix == ".csv":
        import pandas as pd

        da, db = pd.read_csv(a), pd.read_csv(b)
        keep = [c for c in da.columns if "seconds" not in c]
        return list(da.columns) == list(db.columns) and da[keep].equals(db[keep])
    if a.suffix == ".pt":
        import torch

        def equal(x: Any, y: Any) -> bool:
            if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
                return isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and torch.equal(x, y)
            if isinstance(x, dict) and isinstance(y, dict):
                kx, ky = ({k for k in d if "seconds" not in str(k)} for d in (x, y))
                return kx == ky and all(equal(x[k], y[k]) for k in kx)
            if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
                return len(x) == len(y) and all(equal(u, v) for u, v in zip(x, y))
            return x == y

        return equal(torch.load(a, weights_only=True), torch.load(b, weights_only=True))
    return False


def compare(before: Path, after: Path, ignore: tuple[str, ...] = DEFAULT_IGNORE,
            ignore_timing: bool = False) -> dict[str, list[str]]:
    """``{"identical": [...], "timing_only": [...], "different": [...], "only_before": [...],
    "only_after": [...]}`` of relative paths; ``timing_only`` (with ``ignore_timing``): files that differ
    only in wall-time fields (:func:`same_but_timing`)."""
    a, b = files(before, ignore), files(after, ignore)
    out: dict[str, list[str]] = {"identical": [], "timing_only": [], "different": [], "only_before": [],
                                 "only_after": []}
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            out["only_before"].append(rel)
        elif rel not in a:
            out["only_after"].append(rel)
        elif a[rel].stat().st_size == b[rel].stat().st_size and digest(a[rel]) == digest(b[rel]):
            out["identical"].append(rel)
        elif ignore_timing and same_but_timing(a[rel], b[rel]):
            out["timing_only"].append(rel)
        else:
            out["different"].append(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ignore", nargs="*", default=list(DEFAULT_IGNORE),
                    help="file name or relative path patterns left out (default: timing.json)")
    ap.add_argument("--ignore-timing", action="store_true",
                    help="JSON, CSV and .pt files that differ only in wall-time fields (names containing "
                         "'seconds') count as equal; tables and pages that print them still differ")
    args = ap.parse_args(argv)
    for d in (args.before, args.after):
        if not d.is_dir():
            print(f"{d}: not a folder (give two results/ folders)", file=sys.stderr)
            return 2
    res = compare(args.before, args.after, tuple(args.ignore), args.ignore_timing)
    for key in ("different", "only_before", "only_after"):
        for rel in res[key]:
            print(f"{key:12s} {rel}")
    n_bad = len(res["different"]) + len(res["only_before"]) + len(res["only_after"])
    timing = f"{len(res['timing_only'])} equal but for wall times, " if args.ignore_timing else ""
    print(f"{len(res['identical'])} identical, {timing}{len(res['different'])} different, "
          f"{len(res['only_before'])} only in {args.before}, {len(res['only_after'])} only in {args.after}")
    return 0 if n_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
