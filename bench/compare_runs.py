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


def compare(before: Path, after: Path, ignore: tuple[str, ...] = DEFAULT_IGNORE) -> dict[str, list[str]]:
    """``{"identical": [...], "different": [...], "only_before": [...], "only_after": [...]}`` of relative
    paths."""
    a, b = files(before, ignore), files(after, ignore)
    out: dict[str, list[str]] = {"identical": [], "different": [], "only_before": [], "only_after": []}
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            out["only_before"].append(rel)
        elif rel not in a:
            out["only_after"].append(rel)
        elif a[rel].stat().st_size == b[rel].stat().st_size and digest(a[rel]) == digest(b[rel]):
            out["identical"].append(rel)
        else:
            out["different"].append(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ignore", nargs="*", default=list(DEFAULT_IGNORE),
                    help="file name or relative path patterns left out (default: timing.json)")
    args = ap.parse_args(argv)
    for d in (args.before, args.after):
        if not d.is_dir():
            print(f"{d}: not a folder (give two results/ folders)", file=sys.stderr)
            return 2
    res = compare(args.before, args.after, tuple(args.ignore))
    for key in ("different", "only_before", "only_after"):
        for rel in res[key]:
            print(f"{key:12s} {rel}")
    n_bad = len(res["different"]) + len(res["only_before"]) + len(res["only_after"])
    print(f"{len(res['identical'])} identical, {len(res['different'])} different, "
          f"{len(res['only_before'])} only in {args.before}, {len(res['only_after'])} only in {args.after}")
    return 0 if n_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
