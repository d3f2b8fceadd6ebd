"""CPU and wall time of every job of a config's DAG, from the rules' ``benchmark:`` files.

    python bench/dag_cost.py [snakemake arguments, e.g. --configfile config/tiny.yaml]

Lists the jobs of ``snakemake -n --forceall`` (run in the current directory), reads the last line of
each job's benchmark file and prints the totals per top-level folder (dataset or stage) and the costliest
jobs. Jobs without a benchmark file (not run yet) are counted and listed. ``cpu_time`` is the fairer
measure on a shared machine; two cores can at best halve the CPU total in wall-clock time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd


def main(argv: list[str]) -> int:
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "2", "--nolock",
                          *argv], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return out.returncode
    paths = sorted(set(re.findall(r"^\s+benchmark: (\S+)", out.stdout, re.M)))
    rows, missing = [], []
    for p in paths:
        if not os.path.exists(p):
            missing.append(p)
            continue
        df = pd.read_csv(p, sep="\t")
        rows.append({"job": p.removeprefix("benchmarks/").removesuffix(".tsv"), "s": float(df["s"].iloc[-1]),
                     "cpu": float(df["cpu_time"].iloc[-1])})
    df = pd.DataFrame(rows, columns=["job", "s", "cpu"])
    print(f"{len(paths)} jobs in the DAG, {len(df)} with a benchmark file, {len(missing)} without")
    print(f"sum of job wall times {df.s.sum() / 60:.1f} min, CPU {df.cpu.sum() / 60:.1f} min")
    top = df.assign(folder=df["job"].str.split("/").str[0]).groupby("folder")[["s", "cpu"]].sum() / 60
    print(top.round(1).sort_values("cpu", ascending=False).rename(columns={"s": "wall min", "cpu": "CPU min"})
          .to_string())
    print(df.sort_values("cpu", ascending=False).head(15).round(1).to_string(index=False))
    for p in missing[:20]:
        print("no benchmark file:", p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
