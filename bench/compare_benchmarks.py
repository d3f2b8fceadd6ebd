"""Compare two runs' Snakemake ``benchmark:`` files stage by stage (wall time, CPU time, peak memory).

    python bench/compare_benchmarks.py BEFORE_DIR AFTER_DIR [--only explain evaluate] [--csv out.csv]

Each directory is a copy of a run's ``benchmarks/`` folder (``<dataset>/<rule>_<wildcards>.tsv``). Files
present in both are paired; the table lists every pair and the totals per dataset and stage (the rule
name up to its first ``_teacher``/``_student`` part: ``explain``, ``evaluate``, ``train``, ...). ``s`` is
wall time and ``cpu_time`` the CPU seconds of the job's processes, which depend less on other jobs sharing
the cores; ``max_rss`` is the peak resident memory in MB. Snakemake appends one line per repeat; the last
line is used.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["s", "cpu_time", "max_rss", "mean_load"]


def read_dir(root: Path) -> pd.DataFrame:
    rows = []
    for f in sorted(root.rglob("*.tsv")):
        df = pd.read_csv(f, sep="\t")
        if df.empty:
            continue
        rel = f.relative_to(root).with_suffix("").as_posix()
        rows.append({"job": rel, **{c: float(df[c].iloc[-1]) for c in COLUMNS if c in df.columns}})
    return pd.DataFrame(rows, columns=["job", *COLUMNS])


def stage_of(job: str) -> tuple[str, str]:
    parts = job.split("/")
    dataset = parts[0] if len(parts) > 1 else "-"
    rule = re.split(r"_(teacher|student)(_|$)", parts[-1])[0]
    return dataset, rule


def compare(before: Path, after: Path, only: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    b, a = read_dir(before), read_dir(after)
    if b.empty or a.empty:
        raise SystemExit(f"no benchmark files under {before if b.empty else after}")
    df = b.merge(a, on="job", suffixes=("_before", "_after"))
    df[["dataset", "stage"]] = [stage_of(j) for j in df["job"]]
    if only:
        df = df[df["stage"].isin(only)]
    df["speedup_s"] = (df["s_before"] / df["s_after"]).round(2)
    df["speedup_cpu"] = (df["cpu_time_before"] / df["cpu_time_after"]).round(2)
    totals = df.groupby(["dataset", "stage"], as_index=False).agg(
        jobs=("job", "size"), s_before=("s_before", "sum"), s_after=("s_after", "sum"),
        cpu_before=("cpu_time_before", "sum"), cpu_after=("cpu_time_after", "sum"),
        peak_rss_before=("max_rss_before", "max"), peak_rss_after=("max_rss_after", "max"))
    totals["speedup_s"] = (totals["s_before"] / totals["s_after"]).round(2)
    totals["speedup_cpu"] = (totals["cpu_before"] / totals["cpu_after"]).round(2)
    return df, totals.round(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--only", nargs="*", default=None, help="stages to keep (e.g. explain evaluate)")
    ap.add_argument("--csv", type=Path, default=None, help="also write the per-job table here")
    args = ap.parse_args(argv)
    jobs, totals = compare(args.before, args.after, args.only)
    cols = ["job", "s_before", "s_after", "speedup_s", "cpu_time_before", "cpu_time_after", "speedup_cpu",
            "max_rss_before", "max_rss_after", "mean_load_before", "mean_load_after"]
    print("## Totals per dataset and stage\n")
    print(totals.to_markdown(index=False))
    print("\n## Jobs\n")
    print(jobs[cols].round(2).to_markdown(index=False))
    if args.csv:
        jobs.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
