"""Report assembly: the tables of the source reports as CSV/Markdown/LaTeX with the published value beside
ours, and a static ``results/index.html`` that links every artifact (issue "Report assembly").

Every table a stage writes for a table of a source report carries at least one column whose name starts
with ``published`` or ends with ``_paper`` (the value of the paper) -- :func:`export_table` checks it. :func:`build_index` walks
``results/`` and links only files that exist, grouped by dataset/stage, with the config that produced them
and its hash.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from .errors import XaipipeError
from .io import atomic_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg"}
#: file kinds listed in the index (everything else under results/ is skipped: checkpoints are linked too)
LISTED_SUFFIXES = IMAGE_SUFFIXES | {".csv", ".md", ".tex", ".json", ".html", ".parquet", ".pt", ".txt", ".npz",
                                    ".npy", ".tsv"}


def published_columns(df: pd.DataFrame) -> list[str]:
    """Columns holding the paper's values: ``published...`` or ``..._paper`` / ``paper_...`` (not the notes
    ``paper_dataset``, ``paper_source``)."""
    out = []
    for c in df.columns:
        n = str(c).lower()
        if n.startswith("published") or n.endswith("_paper") or (n.startswith("paper_") and n not in ("paper_dataset", "paper_source")):
            out.append(c)
    return out


def export_table(csv_path: str | Path, out_dir: str | Path, name: str, caption: str = "") -> dict:
    """Copy one stage table into the report folder as ``name.csv``, ``name.md`` and ``name.tex``.

    Raises when the table has no ``published*`` column (every report table shows the paper's value)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise XaipipeError(f"report: table {csv_path} is missing; rerun the rule that writes it")
    df = pd.read_csv(csv_path)
    pub = published_columns(df)
    if not pub:
        raise XaipipeError(f"report: table {csv_path} has no published-value column (a column named "
                           f"'published...' or '..._paper'); add the paper's value to the stage that writes it")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out_dir / f"{name}.md") as tmp:
        head = f"**{caption}**\n\n" if caption else ""
        tmp.write_text(head + df.to_markdown(index=False) + "\n")
    with atomic_path(out_dir / f"{name}.tex") as tmp:
        latex = df.to_latex(index=False, na_rep="--", float_format="%.4g", caption=_latex_escape(caption) or None,
                            label=f"tab:{name}", escape=True)
        tmp.write_text(latex)
    return {"name": name, "source": str(csv_path), "rows": int(len(df)), "published_columns": pub,
            "caption": caption}


def _latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (pandas escapes the cells but not the caption)."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(ch, ch) for ch in text)


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys): the same settings give the same hash."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _group_of(rel_parts: tuple[str, ...]) -> tuple[str, str]:
    """(section, subsection) of a file under results/: ``<dataset or stage>/<stage or sub>``."""
    top = rel_parts[0] if len(rel_parts) > 1 else "(top level)"
    sub = rel_parts[1] if len(rel_parts) > 2 else ""
    return top, sub


def build_index(results_dir: str | Path, out_html: str | Path, config: dict, tables: Iterable[dict] = (),
                title: str = "xaipipe results") -> dict:
    """Write the static index: every listed artifact under ``results_dir`` (relative links, images as
    thumbnails), the report tables first, then the config (YAML-like JSON) and its hash."""
    results_dir = Path(results_dir)
    out_html = Path(out_html)
    files = sorted(p for p in results_dir.rglob("*") if p.is_file() and p.suffix.lower() in LISTED_SUFFIXES
                   and p.resolve() != out_html.resolve() and not p.name.startswith("."))
    groups: dict[tuple[str, str], list[Path]] = {}
    for p in files:
        groups.setdefault(_group_of(p.relative_to(results_dir).parts), []).append(p)
    base = out_html.parent
    h = config_hash(config)
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:80em}h2{border-bottom:1px solid #ccc}"
             "ul{columns:2}li{margin:.1em 0}img.t{height:120px;margin:4px;border:1px solid #ddd}"
             "code{background:#f4f4f4}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
             "</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f"<p>{len(files)} artifacts. Config hash <code>{h[:16]}</code> (sha256 of the merged config, "
             "below). Produced by <code>snakemake</code>; each folder's files are listed with links.</p>"]
    tables = list(tables)
    if tables:
        parts.append("<h2 id='tables'>Tables of the source reports</h2><table><tr><th>table</th><th>caption</th>"
                     "<th>files</th></tr>")
        for t in tables:
            links = " ".join(f"<a href='{e(_rel(base / 'report' / 'tables' / (t['name'] + s), base))}'>{s[1:]}</a>"
                             for s in (".csv", ".md", ".tex")
                             if (base / "report" / "tables" / (t["name"] + s)).is_file())
            parts.append(f"<tr><td>{e(t['name'])}</td><td>{e(t.get('caption', ''))}</td><td>{links}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Contents</h2><ul>")
    for (top, sub) in groups:
        anchor = f"{top}-{sub}".replace("/", "-")
        parts.append(f"<li><a href='#{e(anchor)}'>{e(top)}{' / ' + e(sub) if sub else ''}</a> "
                     f"({len(groups[(top, sub)])})</li>")
    parts.append("</ul>")
    for (top, sub), paths in groups.items():
        anchor = f"{top}-{sub}".replace("/", "-")
        parts.append(f"<h2 id='{e(anchor)}'>{e(top)}{' / ' + e(sub) if sub else ''}</h2>")
        images = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
        others = [p for p in paths if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            parts.append("<ul>")
            for p in others:
                rel = _rel(p, base)
                parts.append(f"<li><a href='{e(rel)}'>{e(p.relative_to(results_dir).as_posix())}</a> "
                             f"<small>({p.stat().st_size:,} B)</small></li>")
            parts.append("</ul>")
        for p in images:
            rel = _rel(p, base)
            parts.append(f"<a href='{e(rel)}' title='{e(p.relative_to(results_dir).as_posix())}'>"
                         f"<img class='t' src='{e(rel)}' alt='{e(p.name)}'></a>")
    parts.append("<h2 id='config'>Config</h2><pre>" + e(json.dumps(config, indent=1, sort_keys=True, default=str))
                 + "</pre></body></html>")
    with atomic_path(out_html) as tmp:
        tmp.write_text("\n".join(parts))
    return {"n_files": len(files), "config_hash": h, "groups": len(groups)}


# --- the README's "Results" section ------------------------------------------------------------------
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
#: ranking columns shown in the README (the full table is ranking.csv / ranking.md)
RANKING_COLUMNS = ["rank", "variant", "aopc_accuracy_zero", "aopc_accuracy_gaussian", "aopc_accuracy_neutral",
                   "planted_precision@5"]
#: distortion_ranking columns shown in the README
DISTORTION_COLUMNS = ["rank", "variant", "aopc_distortion_l1", "aopc_distortion_l2", "aopc_distortion_l4",
                      "rank_accuracy_zero"]
SIGNIFICANCE_NOTE = ("`vs <reference>`: AOPC difference variant − reference over the same documents (positive = "
                     "the variant is better); `*` = significant at {alpha} after Holm's correction over every "
                     "comparison of the table (intervals, p-values and all modes in the model's `{file}.md`).")


def _alpha_text(config: dict) -> str:
    """The significance level of the comparisons (``evaluate.alpha`` of the explained datasets)."""
    alphas = {float((config.get(d) or {}).get("evaluate", {}).get("alpha", 0.05)) for d in config.get("datasets", [])
              if (config.get(d) or {}).get("explain")}
    if len(alphas) > 1:
        return "each dataset's `evaluate.alpha`"
    return f"alpha = {next(iter(alphas), 0.05):g}"


def _comparison_cells(df: pd.DataFrame, score: str) -> dict[str, list[str]]:
    """``vs <ref> (<mode>)`` -> ``+0.123*`` per row, for each reference compared on ``score``."""
    out = {}
    for c in df.columns:
        if c.startswith(f"{score}_vs_") and not c.endswith(("_ci", "_p_adj", "_sig")):
            ref = c[len(score) + 4:]
            sig = df[f"{c}_sig"] if f"{c}_sig" in df.columns else pd.Series([""] * len(df))
            label = f"vs {ref} ({score.rsplit('_', 1)[-1]})"
            out[label] = ["" if pd.isna(v) else f"{v:+.3f}{'*' if s == '*' else ''}" for v, s in zip(df[c], sig)]
    return out


def _ranking_block(title: str, path: str | Path, columns: list[str], score: str, top: int, file: str,
                   alpha: str) -> list[str]:
    df = pd.read_csv(path)
    if not len(df):
        return []
    shown = df[[c for c in columns if c in df.columns]].head(top).copy()
    cells = _comparison_cells(df.head(top), score)
    for label, values in cells.items():
        shown[label] = values
    # the comparison cells stay text ("+0.000*"): tabulate would parse "+0.000" into a bare 0
    text = [i for i, c in enumerate(shown.columns) if c in cells]
    out = [title.format(n=min(top, len(df)), total=len(df)), "",
           shown.to_markdown(index=False, disable_numparse=text or False), ""]
    if cells:
        out += [SIGNIFICANCE_NOTE.format(file=file, alpha=alpha), ""]
    return out


def results_section(tables_dir: str | Path, tables: Iterable[dict], config: dict,
                    rankings: dict[str, str | Path] | None = None, top: int = 8,
                    distortion: dict[str, str | Path] | None = None) -> str:
    """Markdown for the README's "Results" section, generated from the report tables (``name.md``, which
    carry the published value beside ours), the deletion-curve rankings (``title -> ranking.csv``, the
    first ``top`` rows, the AOPC columns and the zero-mode comparisons with the references, ``*`` where
    significant) and the distortion-curve rankings (``title -> distortion_ranking.csv``, likewise)."""
    tables_dir = Path(tables_dir)
    h = config_hash(config)
    out = [f"Generated from `results/report/` by the pipeline (config hash `{h[:16]}`, datasets "
           f"{', '.join(config.get('datasets', []))}); regenerate with `snakemake --cores all` and "
           "`.venv/bin/xaipipe readme`. Every table shows the published value beside ours; the notes "
           "columns say where our setting differs (quick scale, re-split AG News, locally trained embeddings).",
           ""]
    for t in tables:
        md = tables_dir / f"{t['name']}.md"
        if not md.is_file():
            raise XaipipeError(f"report: {md} is missing; run the report stage (snakemake --cores all) first")
        body = md.read_text().strip()
        if body.startswith("**"):  # the caption line written by export_table
            body = body.split("\n", 1)[1].strip() if "\n" in body else ""
        out += [f"#### {t.get('caption') or t['name']}", "",
                f"[`{t['name']}`](results/report/tables/{t['name']}.md) "
                f"([csv](results/report/tables/{t['name']}.csv), [tex](results/report/tables/{t['name']}.tex))",
                "", body, ""]
    alpha = _alpha_text(config)
    for title, path in (rankings or {}).items():
        out += _ranking_block(f"#### Deletion-curve ranking, {title} (AOPC, higher = better; top {{n}} of {{total}})",
                              path, RANKING_COLUMNS, "aopc_accuracy_zero", top, "ranking", alpha)
    for title, path in (distortion or {}).items():
        out += _ranking_block(f"#### Distortion-curve ranking, {title} (AOPC of the distortion curves, higher = "
                              "better; top {n} of {total})", path, DISTORTION_COLUMNS, "aopc_distortion_l2", top,
                              "distortion_ranking", alpha)
    return "\n".join(out).rstrip() + "\n"


def update_readme(readme: str | Path, section: str) -> bool:
    """Put ``section`` between the README's results markers (each on a line of its own; a marker quoted in
    the text does not count); True when the file changed."""
    import re

    readme = Path(readme)
    text = readme.read_text()
    start = re.search(rf"^{re.escape(README_START)}[ \t]*$", text, re.M)
    end = re.search(rf"^{re.escape(README_END)}[ \t]*$", text, re.M)
    if start is None or end is None or start.start() > end.start():
        raise XaipipeError(f"{readme} has no '{README_START}' ... '{README_END}' block (each marker on a line of "
                           "its own); add the two lines where the results section belongs")
    new = f"{text[:start.start()]}{README_START}\n{section.strip()}\n{README_END}{text[end.end():]}"
    if new == text:
        return False
    with atomic_path(readme) as tmp:
        tmp.write_text(new)
    return True
