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

import numpy as np
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


# --- the results part of the index ---------------------------------------------------------------------------
#: figure order in the index: deletion (accuracy) first, then probability, misclassified, distortion
FIGURE_ORDER = ("accuracy", "probability", "misclassified_changed", "distortion")
MODE_ORDER = ("zero", "gaussian", "neutral", "l1", "l2", "l4")


#: column suffixes of the significance tests: (suffix, role); a corrected p-value (``_p_adj``) wins over a raw one
SIGNIFICANCE_SUFFIXES = (("_significant", "significant"), ("_sig", "significant"), ("_p_adj", "p"), ("_p", "p"))


def significance_columns(df: pd.DataFrame) -> dict[str, dict[str, str | None]]:
    """The significance tests of a ranking table, recognised by name: ``<test>_p`` or ``<test>_p_adj`` (a
    p-value; the corrected one where both are present) and ``<test>_significant`` or ``<test>_sig`` (true or
    ``*`` where the difference is significant after the correction the table's writer applied), or a bare
    ``p``/``significant``. Returns ``test -> {"p": column or None, "significant": column or None}`` in column
    order."""
    tests: dict[str, dict[str, str | None]] = {}
    for c in df.columns:
        n = str(c)
        for suffix, key in SIGNIFICANCE_SUFFIXES:
            if n.endswith(suffix) and len(n) > len(suffix):
                t = tests.setdefault(n[: -len(suffix)], {"p": None, "significant": None})
                if not (key == "p" and suffix == "_p" and t["p"] is not None):  # keep a corrected p-value
                    t[key] = c
                break
        else:
            if n in ("p", "significant"):
                tests.setdefault("", {"p": None, "significant": None})[n] = c
    return tests


def _truthy(x) -> bool:
    if isinstance(x, str):
        return x.strip().lower() in ("true", "yes", "1", "*", "y")
    try:
        return bool(x) and not pd.isna(x)
    except (TypeError, ValueError):
        return False


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.4g}"
    return str(x)


def table_html(df: pd.DataFrame, significance: bool = False, highlight: Iterable[str] = (),
               key: str | None = None) -> str:
    """A DataFrame as an HTML table: ``<col>_ci`` merged into ``<col>``'s cell; with ``significance`` the
    columns of :func:`significance_columns` merged into one cell per test (the p-value, ``*`` where
    significant), into the test's own column where the table has one (``<test>`` = the difference, as in
    ``aopc_accuracy_zero_vs_greedy_gn``); rows whose ``key`` column is in ``highlight`` in bold."""
    e = html.escape
    tests = significance_columns(df) if significance else {}
    sig_cols = {c for t in tests.values() for c in t.values() if c is not None}
    inline = {t for t in tests if t and t in df.columns}  # the test's marks go into its difference column
    cols: list[tuple[str, object]] = []  # (header, column or test name)
    done_tests: set[str] = set()
    for c in df.columns:
        n = str(c)
        if n.endswith("_ci") and n[:-3] in df.columns:
            continue
        if c in sig_cols:
            t = next(k for k, v in tests.items() if c in v.values())
            if t not in done_tests and t not in inline:
                done_tests.add(t)
                cols.append((f"{t or 'test'} (p, *)", ("test", t)))
            continue
        cols.append((f"{n} (p, *)" if n in inline else n, c))
    out = ["<table class='r'><tr>" + "".join(f"<th>{e(h)}</th>" for h, _ in cols) + "</tr>"]
    hl = set(map(str, highlight))
    for _, row in df.iterrows():
        bold = key is not None and str(row.get(key)) in hl
        cells = []
        for _, c in cols:
            if isinstance(c, tuple):
                pv, sig = _test_marks(row, tests[c[1]])
                text = pv + (" <b class='sig'>*</b>" if sig else "")
                cells.append(f"<td class='n'>{text or '–'}</td>")
                continue
            v = row[c]
            text = e(_fmt(v))
            ci = f"{c}_ci"
            if ci in df.columns and isinstance(row[ci], str):
                text += f" <small>{e(row[ci])}</small>"
            if c in inline:
                pv, sig = _test_marks(row, tests[c])
                text += (f" <small>p {pv}</small>" if pv else "") + (" <b class='sig'>*</b>" if sig else "")
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            cells.append(f"<td{' class=n' if num else ''}>{text}</td>")
        out.append(f"<tr{' class=hl' if bold else ''}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _test_marks(row, test: dict) -> tuple[str, bool]:
    """One test in one row: its p-value as text ("" when absent) and whether the row marks it significant."""
    pv = row[test["p"]] if test["p"] is not None else None
    sig = test["significant"] is not None and _truthy(row[test["significant"]])
    return ("" if pv is None or pd.isna(pv) else _fmt(pv)), sig


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path) if path.is_file() and path.stat().st_size > 0 else None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None


def _figure_key(p: Path) -> tuple:
    curve, _, mode = p.stem.rpartition("_")
    c = FIGURE_ORDER.index(curve) if curve in FIGURE_ORDER else len(FIGURE_ORDER)
    m = MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER)
    return (c, m, p.stem)


def results_part(results_dir: Path, base: Path, explained: Iterable[dict], datasets: Iterable[str]) -> tuple[str, list]:
    """HTML of the index's results part, the datasets with explained models first. Per explained model a link
    to its comparison page, the ranking table with significance marks, the deletion/distortion figures and
    the planted-ground-truth table; then per dataset the teacher beside its TF-IDF reference (from
    ``summary/models.csv``). Returns the HTML and the navigation entries ``(anchor, text)``."""
    e = html.escape
    explained = [dict(x) for x in explained]
    order = list(dict.fromkeys([*(x["dataset"] for x in explained), *datasets]))
    models = _read_csv(results_dir / "summary" / "models.csv")
    parts, nav = [], []
    for d in order:
        mine = [x["model"] for x in explained if x["dataset"] == d]
        mrows = models[models["dataset"].astype(str) == d] if models is not None and "dataset" in models else None
        if not mine and (mrows is None or not len(mrows) or "tfidf_reference" not in set(mrows["model"])):
            continue  # nothing to compare: the file listing below has the dataset's artifacts
        anchor = f"res-{d}"
        nav.append((anchor, d))
        parts.append(f"<h2 id='{e(anchor)}'>{e(d)}</h2>")
        for m in mine:
            parts += _model_results(results_dir, base, d, m, nav)
        if mrows is not None and len(mrows):
            keep = [c for c in ("model", "arch", "accuracy", "vs_tfidf", "published_accuracy", "difference",
                                "errors", "n_test", "parameters", "comparable_with_paper") if c in mrows.columns]
            has_ref = "tfidf_reference" in set(mrows["model"])
            parts.append(f"<h3>{e(d)}: the teacher beside its TF-IDF reference</h3>" if has_ref
                         else f"<h3>{e(d)}: models</h3>")
            parts.append(table_html(mrows[keep], highlight=("teacher", "tfidf_reference"), key="model"))
            if has_ref:
                parts.append("<p class='note'><code>vs_tfidf</code>: accuracy minus the TF-IDF + linear SVM reference "
                             "(<a href='" + e(_rel(results_dir / "summary" / "models.csv", base)) + "'>models.csv</a>); "
                             "a CNN far below it has not learned the task.</p>")
    return "\n".join(parts), nav


def _model_results(results_dir: Path, base: Path, d: str, m: str, nav: list) -> list[str]:
    """Comparison page link, ranking, figures and correctness of one explained model (see results_part)."""
    e = html.escape
    ev = results_dir / d / "evaluate" / m
    anchor = f"res-{d}-{m}"
    nav.append((anchor, f"{d} / {m}"))
    parts = [f"<h3 id='{e(anchor)}'>{e(d)} / {e(m)}: which method is best</h3>"]
    page = results_dir / d / "compare" / m / "index.html"
    if page.is_file():
        parts.append(f"<p class='cmp'><a href='{e(_rel(page, base))}'><b>Compare the methods on one document "
                     f"&rarr;</b></a> every selected document under every method, raw or 8th power.</p>")
    rk = _read_csv(ev / "ranking.csv")
    if rk is None:
        parts.append(f"<p class='note'>No ranking yet ({e(_rel(ev / 'ranking.csv', results_dir))}).</p>")
    else:
        tests = significance_columns(rk)
        links = " ".join(f"<a href='{e(_rel(ev / f, base))}'>{f}</a>" for f in ("ranking.csv", "ranking.md")
                         if (ev / f).is_file())
        parts.append(f"<h4>Ranking by AOPC of the deletion curves (higher = better) <small>{links}</small></h4>")
        parts.append("<div class='wide'>" + table_html(rk, significance=True, highlight=("random",), key="variant")
                     + "</div>")
        if tests:
            named = ", ".join(f"<code>{e(k or 'significant')}</code>" for k in tests)
            parts.append(f"<p class='note'>Significance ({named}): the p-value of each comparison, <b>*</b> where "
                         "<code>ranking.csv</code> marks it significant (after its multiple-comparison "
                         "correction).</p>")
        else:
            parts.append("<p class='note sig-absent'>No significance tests in <code>ranking.csv</code> yet (columns "
                         "<code>&lt;test&gt;_p</code> / <code>&lt;test&gt;_significant</code>): judge differences by "
                         "the 95 % bootstrap intervals in brackets.</p>")
    figs = sorted((ev / "figures").glob("*.png"), key=_figure_key) if (ev / "figures").is_dir() else []
    if figs:
        parts.append("<h4>Deletion and distortion curves</h4><div class='figs'>")
        for f in figs:
            rel = e(_rel(f, base))
            parts.append(f"<figure><a href='{rel}'><img src='{rel}' alt='{e(f.stem)}' loading='lazy'></a>"
                         f"<figcaption>{e(f.stem)}</figcaption></figure>")
        parts.append("</div>")
    cr = _read_csv(ev / "correctness.csv")
    if cr is not None and len(cr):
        links = " ".join(f"<a href='{e(_rel(ev / f, base))}'>{f}</a>" for f in ("correctness.csv", "correctness.md")
                         if (ev / f).is_file())
        parts.append(f"<h4>Correctness against the planted words (95 % bootstrap intervals) <small>{links}</small></h4>")
        parts.append("<div class='wide'>" + table_html(cr, highlight=("random",), key="variant") + "</div>")
    return parts


def build_index(results_dir: str | Path, out_html: str | Path, config: dict, tables: Iterable[dict] = (),
                title: str = "xaipipe results", explained: Iterable[dict] = ()) -> dict:
    """Write the static index: first the results (per dataset the teacher beside its TF-IDF reference, per
    explained model -- ``explained``: ``{"dataset", "model"}`` -- its comparison page, ranking with
    significance marks, figures and correctness table, see :func:`results_part`), the report tables (each
    one click away), then every listed artifact under ``results_dir`` (relative links, images as
    thumbnails), then the config (YAML-like JSON) and its hash."""
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
             "table.r{font-size:13px}table.r td.n{text-align:right;white-space:nowrap}table.r small{color:#666}"
             "tr.hl{font-weight:bold}b.sig{color:#b00}.note{font-size:13px;color:#444}.wide{overflow-x:auto}"
             "nav{background:#f4f4f4;padding:.4em .8em;border:1px solid #ddd}nav a{margin-right:.8em}"
             ".figs{display:flex;flex-wrap:wrap;gap:8px}.figs figure{margin:0;text-align:center;font-size:12px}"
             ".figs img{height:230px;border:1px solid #ddd}p.cmp{font-size:15px}details{margin:.2em 0}"
             "summary{cursor:pointer}"
             "</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f"<p>{len(files)} artifacts. Config hash <code>{h[:16]}</code> (sha256 of the merged config, "
             "below). Produced by <code>snakemake</code>: the results first, then each folder's files with "
             "links.</p>"]
    datasets = [str(d) for d in (config.get("datasets") or [])]
    body, nav = results_part(results_dir, base, explained, datasets)
    tables = list(tables)
    nav_links = [f"<a href='#{e(a)}'>{e(t)}</a>" for a, t in nav]
    nav_links += ["<a href='#tables'>tables of the source reports</a>"] if tables else []
    nav_links += ["<a href='#files'>all files</a>", "<a href='#config'>config</a>"]
    parts.append("<nav>" + " ".join(nav_links) + "</nav>")
    if body:
        parts.append(body)
    if tables:
        parts.append("<h2 id='tables'>Tables of the source reports</h2><p class='note'>Click a caption to show "
                     "the table (the published value beside ours).</p><table><tr><th>table</th><th>caption</th>"
                     "<th>files</th></tr>")
        for t in tables:
            tdir = base / "report" / "tables"
            links = " ".join(f"<a href='{e(_rel(tdir / (t['name'] + s), base))}'>{s[1:]}</a>"
                             for s in (".csv", ".md", ".tex") if (tdir / (t["name"] + s)).is_file())
            df = _read_csv(tdir / f"{t['name']}.csv")
            cap = e(t.get("caption", "")) or e(t["name"])
            shown = (f"<details id='table-{e(t['name'])}'><summary>{cap}</summary><div class='wide'>"
                     f"{table_html(df)}</div></details>" if df is not None else cap)
            parts.append(f"<tr><td>{e(t['name'])}</td><td>{shown}</td><td>{links}</td></tr>")
        parts.append("</table>")
    parts.append("<h2 id='files'>All files</h2><h3>Contents</h3><ul>")
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
        tmp.write_text("\n".join(parts), encoding="utf-8")
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
