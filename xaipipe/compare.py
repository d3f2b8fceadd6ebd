"""One document under every method: the static comparison page of an explained model (issue #18).

``results/<dataset>/compare/<model>/index.html`` shows the selected documents (``explain/<model>/
documents.parquet``) one at a time, once per method variant, one row each, as the report's figures 4-23 do:

* colours as :mod:`xaipipe.render` (the same functions, in JavaScript): a variant with a negative value in
  any document is *signed* (blue-white-red, ``[-1, 1]``), the others *unsigned* (white-red, ``[0, 1]``);
  every map divided by its own ``max|r|``; a switch between the raw display and the report's 8th power
  (``sign(v) |v|^8``);
* the planted keywords underlined (planted corpus), with how many of them each method ranks on top;
* beside each row the explained class and the document's own curves (``evaluate/<model>/<variant>/
  per_doc.parquet``): for a correctly classified document the probability of its class while the method's
  k most relevant words are deleted (a sparkline beside the random order's), the k at which the prediction
  flips and the document's AOPC; for a misclassified one the k at which the prediction changes;
* rows in the order of ``ranking.csv`` (best AOPC first) or of the config; a picker that searches by id,
  class and correct/misclassified; the state in the URL (``#doc=<id>&display=p8&mode=zero``).

The page is static and works from ``file://`` (no server): ``index.html`` holds the catalogue (documents,
variants, classes) and loads each document's data lazily as ``docs/<n>.js`` (a ``<script>`` that calls
``xaiCompare.receive(...)``: browsers refuse ``fetch()`` of local files, not scripts), so 140 documents
x 23 methods open as fast as one.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import XaipipeError
from .io import atomic_path, read_json, read_parquet

#: the curve-only row of the random-order baseline (no relevance map)
BASELINE = "random"
#: significant digits of the relevance values in the per-document files (display only)
DIGITS = 4


def _num(x, digits: int = DIGITS) -> str:
    """A float as a short JS literal (``null`` for NaN/inf)."""
    x = float(x)
    if not math.isfinite(x):
        return "null"
    s = f"{x:.{digits}g}"
    return s


def _array(values: Iterable, digits: int = DIGITS) -> str:
    return "[" + ",".join(_num(v, digits) for v in values) + "]"


def _js(obj) -> str:
    """JSON for inclusion in a script (no ``</script>`` can close the element early; ASCII only)."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=False).replace("</", "<\\/")


def _clean(v):
    """NaN -> None, numpy scalars -> Python, for JSON."""
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def order_by_relevance(r: np.ndarray) -> np.ndarray:
    """Positions by decreasing relevance, ties by position (as :func:`xaipipe.evaluate.order_by_relevance`)."""
    return np.argsort(-np.asarray(r, dtype=np.float64), kind="stable")


def load_inputs(documents: str | os.PathLike, relevance: Mapping[str, str | os.PathLike],
                per_doc: Mapping[str, str | os.PathLike], ranking: str | os.PathLike | None = None,
                stats: str | os.PathLike | None = None, methods: Mapping[str, str] | None = None) -> dict:
    """Read one model's documents, every variant's relevance and per-document curves into one structure.

    ``relevance``/``per_doc``: variant -> file (``per_doc`` may hold the ``random`` baseline). Documents are
    matched by id; a relevance file with other documents or another number of words per document stops
    with a message naming it."""
    docs = read_parquet(documents, rule="select_documents")
    ids = [str(i) for i in docs["id"]]
    if len(set(ids)) != len(ids):
        raise XaipipeError(f"compare: {documents} lists a document id twice")
    n_words = [len(t) for t in docs["tokens"]]
    maps: dict[str, list[np.ndarray]] = {}
    targets: dict[str, list[int]] = {}
    for v, path in relevance.items():
        rel = read_parquet(path, rule="explain")
        by_id = {str(i): k for k, i in enumerate(rel["id"])}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise XaipipeError(f"compare: {path} has no relevance for document(s) {missing[:3]} of {documents}; "
                               "rerun the explain rule")
        rows = [by_id[i] for i in ids]
        maps[v] = [np.asarray(rel["relevance"].iloc[k], dtype=np.float64) for k in rows]
        targets[v] = [int(rel["target"].iloc[k]) for k in rows]
        for i, n, r in zip(ids, n_words, maps[v]):
            if len(r) != n:
                raise XaipipeError(f"compare: {path}: document {i!r} has {len(r)} relevance values for {n} words; "
                                   "rerun the explain rule")
    curves: dict[str, dict[str, list]] = {}
    for v, path in per_doc.items():
        pd_ = read_parquet(path, rule="evaluate")
        by_id = {str(i): k for k, i in enumerate(pd_["id"])}
        cols = [c for c in pd_.columns if c != "id"]
        curves[v] = {c: [pd_[c].iloc[by_id[i]] if i in by_id else None for i in ids] for c in cols}
    ranks: dict[str, dict] = {}
    if ranking is not None and Path(ranking).is_file():
        rk = pd.read_csv(ranking)
        for r in rk.to_dict("records"):
            ranks[str(r["variant"])] = {k: _clean(x) for k, x in r.items()}
    classes = None
    if stats is not None and Path(stats).is_file():
        classes = [str(c) for c in (read_json(stats, rule="prepare_text").get("classes") or [])] or None
    return {"docs": docs, "ids": ids, "maps": maps, "targets": targets, "curves": curves, "ranks": ranks,
            "classes": classes, "methods": dict(methods or {})}


def catalogue(data: dict, title: str, doc_files: Sequence[str], order: str = "ranking") -> dict:
    """What ``index.html`` carries: documents (without their words), variants in row order, classes."""
    docs = data["docs"]
    variants = []
    for k, v in enumerate(data["maps"]):
        r = data["ranks"].get(v, {})
        signed = any(bool((m < 0).any()) for m in data["maps"][v])
        variants.append({"name": v, "method": data["methods"].get(v) or r.get("method") or v, "signed": signed,
                         "config": k, "rank": r.get("rank"), "aopc": r.get("aopc_accuracy_zero"),
                         "auc": r.get("planted_auc")})
    big = 10 ** 9
    variants.sort(key=lambda x: (x["rank"] if isinstance(x["rank"], (int, float)) else big, x["config"]))
    for pos, x in enumerate(variants):
        x["ranked"] = pos
    curve_names = sorted({c for v in data["curves"].values() for c in v})
    modes = []
    for c in curve_names:
        m = c.split("/", 1)[1] if "/" in c else ""
        if m and m not in modes:
            modes.append(m)
    n_classes = int(max([*docs["label"], *docs["pred"]]) + 1) if len(docs) else 0
    classes = data["classes"] or [str(i) for i in range(n_classes)]
    has_planted = "planted" in docs.columns
    entries = []
    for k, r in enumerate(docs.itertuples(index=False)):
        e = {"id": data["ids"][k], "set": str(r.set), "label": int(r.label), "pred": int(r.pred),
             "n": len(r.tokens), "f": doc_files[k]}
        if has_planted:
            e["np"] = int(np.asarray(r.planted, dtype=bool).sum())
        entries.append(e)
    K = 0
    for v in data["curves"].values():
        for vals in v.values():
            for x in vals:
                if x is not None:
                    K = max(K, len(x) - 1)
    return {"title": title, "classes": classes, "variants": variants,
            "baseline": BASELINE if BASELINE in data["curves"] else None, "curves": curve_names,
            "modes": modes, "K": K, "planted": has_planted, "docs": entries, "order": order,
            "set_counts": docs["set"].value_counts().to_dict()}


def doc_payload(data: dict, k: int, variants: Sequence[str]) -> str:
    """The JavaScript of one document: ``xaiCompare.receive({...})`` with its words, planted flags, every
    variant's relevance and target class (in ``variants`` order) and every curve per variant."""
    docs = data["docs"]
    row = docs.iloc[k]
    tokens = [str(t) for t in row["tokens"]]
    parts = [f'"i":{k}', f'"id":{_js(data["ids"][k])}', f'"tokens":{_js(tokens)}']
    planted = None
    if "planted" in docs.columns:
        planted = np.asarray(row["planted"], dtype=bool)
        parts.append('"planted":[' + ",".join("1" if p else "0" for p in planted) + "]")
        hits = []
        n = int(planted.sum())
        for v in variants:
            order = order_by_relevance(data["maps"][v][k])
            hits.append(int(planted[order[:n]].sum()) if n else 0)
        parts.append(f'"hits":{_js(hits)}')
    parts.append('"maps":[' + ",".join(_array(data["maps"][v][k]) for v in variants) + "]")
    parts.append(f'"target":{_js([data["targets"][v][k] for v in variants])}')
    curve_rows = []
    names = sorted({c for v in data["curves"].values() for c in v})
    for c in names:
        per_variant = []
        for v in [*variants, BASELINE]:
            vals = data["curves"].get(v, {}).get(c)
            x = None if vals is None else vals[k]
            if x is None or not np.isfinite(np.asarray(x, dtype=float)).any():
                per_variant.append("null")
            else:
                per_variant.append(_array(x, 4))
        curve_rows.append(f"{_js(c)}:[" + ",".join(per_variant) + "]")
    parts.append('"curves":{' + ",".join(curve_rows) + "}")
    return "xaiCompare.receive({" + ",".join(parts) + "});\n"


def _doc_file(k: int) -> str:
    return f"docs/{k:05d}.js"


def build_compare(out_html: str | os.PathLike, out_docs: str | os.PathLike, data: dict, title: str,
                  links: Mapping[str, str] | None = None) -> dict:
    """Write ``docs/<n>.js`` per document (into a temporary folder renamed into place) and the page."""
    out_html, out_docs = Path(out_html), Path(out_docs)
    if out_docs.parent != out_html.parent or out_docs.name != "docs":
        raise XaipipeError("compare: the documents folder must be 'docs' beside the page")
    files = [_doc_file(k) for k in range(len(data["ids"]))]
    cat = catalogue(data, title, files)
    order = [v["name"] for v in cat["variants"]]
    out_docs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".docs.", suffix=".tmp", dir=out_docs.parent))
    try:
        sizes = []
        for k, f in enumerate(files):
            text = doc_payload(data, k, order)
            (tmp / Path(f).name).write_text(text, encoding="ascii")
            sizes.append(len(text))
        os.chmod(tmp, 0o755)
        if out_docs.exists():
            old = out_docs.with_name(f".docs.old.{os.getpid()}")
            os.replace(out_docs, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out_docs)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    page = render_page(cat, links or {})
    with atomic_path(out_html) as t:
        t.write_text(page, encoding="utf-8")
    return {"n_docs": len(files), "n_variants": len(order), "bytes_docs": sum(sizes),
            "max_doc_bytes": max(sizes) if sizes else 0, "bytes_page": len(page.encode()),
            "signed": [v["name"] for v in cat["variants"] if v["signed"]]}


def write_compare(out_html, out_docs, documents, relevance: Mapping[str, str], per_doc: Mapping[str, str],
                  ranking=None, stats=None, methods: Mapping[str, str] | None = None, title: str = "",
                  links: Mapping[str, str] | None = None) -> dict:
    """Read the stage outputs of one (dataset, model) and write its comparison page (see the module)."""
    data = load_inputs(documents, relevance, per_doc, ranking, stats, methods)
    return build_compare(out_html, out_docs, data, title or "comparison of methods", links)


# --- the page ----------------------------------------------------------------------------------------------
CSS = r"""
body{font-family:sans-serif;margin:0;color:#222}
header{position:sticky;top:0;z-index:2;background:#fafafa;border-bottom:1px solid #ccc;padding:.4em 1em}
header h1{font-size:1.15em;margin:.1em 0 .3em 0}
main{padding:.5em 1em}
.ctl{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start;font-size:13px}
.ctl fieldset{border:1px solid #ddd;padding:.2em .6em .4em .6em;margin:0}
.ctl legend{font-size:12px;color:#555}
#doclist{min-width:26em;font-family:monospace;font-size:12px}
.legend{font-size:11px;display:flex;gap:1.5em;align-items:center}
.bar{width:12em;height:.8em;border:1px solid #888;display:inline-block;vertical-align:middle}
.docinfo{margin:.4em 0 .6em 0;font-size:14px}
.badge{display:inline-block;padding:0 .4em;border-radius:3px;font-size:12px;background:#e8e8e8}
.badge.misclassified{background:#ffd9b3}.badge.correct{background:#d4f0d4}
table.rows{border-collapse:collapse;width:100%}
table.rows td{border-top:1px solid #ddd;vertical-align:top;padding:3px 4px}
td.name{width:11em;font-size:12px}
td.name b{font-size:13px}
td.side{width:13em;font-size:11px;color:#333}
.doc{line-height:1.75;font-family:monospace;font-size:13px;overflow-wrap:anywhere}
.compact .doc{max-height:5.4em;overflow:auto}
.w{padding:1px 1px;border-radius:2px;color:#000}
.w.wt{color:#fff}
.w.pl{text-decoration:underline;text-decoration-color:#0a0;text-decoration-thickness:3px;text-underline-offset:3px;font-weight:bold}
.dim{color:#777}
.err{color:#b00;font-weight:bold}
svg.sp{vertical-align:middle}
a{color:#0645ad}
"""

JS = r"""
"use strict";
(function(){
const C = JSON.parse(document.getElementById('catalogue').textContent);
const cache = {}, waiting = {};
let drawn = null;  // the document on screen (state.doc may already name the next one, still loading)
const X = window.xaiCompare = {catalogue: C, ready: false, shown: null, readyAt: null, renders: 0};
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'})[c]);
const cls = i => (C.classes[i] !== undefined ? C.classes[i] : String(i));
const byId = {}; C.docs.forEach((d, k) => { byId[d.id] = k; });
const state = {doc: null, display: 'raw', mode: C.modes.includes('zero') ? 'zero' : (C.modes[0] || ''),
               order: 'ranking', compact: true};

// colours: xaipipe.render.display_values / rgb / hex_colour
function displayValues(r, signed, p8){
  let s = 0;
  for (const x of r) if (x !== null && isFinite(x)) s = Math.max(s, Math.abs(x));
  if (!(s > 0)) s = 1;
  return r.map(x => {
    if (x === null || !isFinite(x)) return NaN;
    let v = x / s;
    if (!signed) v = Math.min(1, Math.max(0, v));
    if (p8) v = Math.sign(v) * Math.pow(Math.abs(v), 8);
    return v;
  });
}
const h2 = x => Math.round(255 * x).toString(16).padStart(2, '0');
function colour(v){
  if (!isFinite(v)) return '#cccccc';
  v = Math.min(1, Math.max(-1, v));
  return v >= 0 ? '#ff' + h2(1 - v) + h2(1 - v) : '#' + h2(1 + v) + h2(1 + v) + 'ff';
}
// one CSS class per colour (a class per word draws much faster than a style per word): the 256 shades per
// side are all that xaipipe.render.hex_colour can give; white text where |v| > 0.6 (render._text_colour)
function shade(v){
  if (!isFinite(v)) return 'cn';
  v = Math.min(1, Math.max(-1, v));
  return (v >= 0 ? 'r' + Math.round(255 * (1 - v)) : 'b' + Math.round(255 * (1 + v))) + (Math.abs(v) > 0.6 ? ' wt' : '');
}
(function(){
  let css = '.cn{background:#cccccc}';
  for (let g = 0; g < 256; g++) {
    const h = g.toString(16).padStart(2, '0');
    css += `.r${g}{background:#ff${h}${h}}.b${g}{background:#${h}${h}ff}`;
  }
  const st = document.createElement('style'); st.textContent = css; document.head.appendChild(st);
})();
X.displayValues = displayValues; X.colour = colour; X.shade = shade;

function bar(signed){
  const stops = signed ? [-1, -0.5, 0, 0.5, 1] : [0, 0.5, 1];
  return `<span class="bar" style="background:linear-gradient(to right,${stops.map(colour).join(',')})"></span>`;
}

// --- the picker -------------------------------------------------------------------------------------------
function matches(){
  const q = $('q').value.trim().toLowerCase(), c = $('cls').value, s = $('set').value;
  return C.docs.filter(d => (!q || d.id.toLowerCase().includes(q)) && (c === '' || String(d.label) === c)
                            && (s === '' || d.set === s));
}
function fillList(){
  const m = matches(), list = $('doclist');
  list.innerHTML = m.map(d => `<option value="${esc(d.id)}">${esc(d.id)} \u2014 ${esc(cls(d.label))}` +
    (d.set === 'misclassified' ? ` \u2192 ${esc(cls(d.pred))}` : '') + ` (${d.set === 'correct' ? 'ok' : 'wrong'}, ${d.n} w)</option>`).join('');
  $('count').textContent = `${m.length} of ${C.docs.length} documents`;
  if (state.doc !== null && m.some(d => d.id === state.doc)) list.value = state.doc;
  return m;
}
function onFilter(){
  const m = fillList();
  if (m.length && !m.some(d => d.id === state.doc)) go(m[0].id);
}
function step(delta){
  const m = matches(); if (!m.length) return;
  let k = m.findIndex(d => d.id === state.doc);
  k = k < 0 ? 0 : (k + delta + m.length) % m.length;
  go(m[k].id);
}

// --- state in the URL -------------------------------------------------------------------------------------
function readHash(){
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.has('display')) state.display = h.get('display') === 'p8' ? 'p8' : 'raw';
  if (h.has('mode') && C.modes.includes(h.get('mode'))) state.mode = h.get('mode');
  if (h.has('order')) state.order = h.get('order') === 'config' ? 'config' : 'ranking';
  const d = h.get('doc');
  return (d !== null && d in byId) ? d : null;
}
function writeHash(){
  const h = new URLSearchParams({doc: state.doc, display: state.display, mode: state.mode, order: state.order});
  history.replaceState(null, '', '#' + h.toString());
}
function go(id){ state.doc = id; writeHash(); return show(id); }

// --- lazy loading: one <script src="docs/n.js"> per document (works from file://) ----------------------------
X.receive = function(d){ cache[d.i] = d; (waiting[d.i] || []).forEach(f => f[0](d)); delete waiting[d.i]; };
function load(k){
  if (cache[k]) return Promise.resolve(cache[k]);
  return new Promise((resolve, reject) => {
    if (waiting[k]) { waiting[k].push([resolve, reject]); return; }
    waiting[k] = [[resolve, reject]];
    const s = document.createElement('script');
    s.src = C.docs[k].f;
    s.onerror = () => { (waiting[k] || []).forEach(f => f[1](new Error('could not load ' + C.docs[k].f))); delete waiting[k]; };
    document.head.appendChild(s);
  });
}

// --- one document under every method ----------------------------------------------------------------------
function spark(curve, base, yMax){
  const W = 90, H = 26, K = C.K || 1;
  const pts = c => c.map((y, k) => (y === null ? null : `${(k / K * W).toFixed(1)},${(H - 1 - y / yMax * (H - 2)).toFixed(1)}`))
                     .filter(p => p !== null).join(' ');
  let s = `<svg class="sp" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}"><rect width="${W}" height="${H}" fill="#f6f6f6"/>`;
  if (base) s += `<polyline points="${pts(base)}" fill="none" stroke="#999" stroke-dasharray="3,2"/>`;
  if (curve) s += `<polyline points="${pts(curve)}" fill="none" stroke="#c00" stroke-width="1.5"/>`;
  return s + '</svg>';
}
const fix = (x, n) => (x === null || !isFinite(x) ? '\u2013' : x.toFixed(n));
function firstAt(c, test){
  if (!c) return null;
  for (let k = 0; k < c.length; k++) if (c[k] !== null && test(c[k])) return k;
  return -1;
}
function sideCell(d, meta, vi){
  const doc = C.docs[d.i], out = [], nv = C.variants.length;
  const get = name => (d.curves[name] || [])[vi] || null;
  const base = name => (d.curves[name] || [])[nv] || null;
  if (vi < nv && d.target[vi] !== doc.pred) out.push(`<span class="err">explains ${esc(cls(d.target[vi]))}</span>`);
  else if (vi < nv) out.push(`explains <b>${esc(cls(d.target[vi]))}</b>`);
  if (doc.set === 'correct') {
    const p = get(`probability/${state.mode}`), a = get(`accuracy/${state.mode}`);
    if (p) {
      const aopc = p.reduce((s, y) => s + (p[0] - y), 0) / p.length;  // xaipipe.evaluate.aopc
      out.push(spark(p, vi < nv ? base(`probability/${state.mode}`) : null, 1));
      out.push(`p(class) ${fix(p[0], 2)} \u2192 ${fix(p[p.length - 1], 2)} at k=${p.length - 1}, AOPC ${fix(aopc, 3)}`);
    }
    const f = firstAt(a, y => y < 0.5);
    if (f !== null) out.push(f < 0 ? `prediction holds to k=${C.K}` : `prediction flips at k=${f}`);
  } else {
    const c = get(`misclassified_changed/${state.mode}`);
    if (c) {
      out.push(spark(c, vi < nv ? base(`misclassified_changed/${state.mode}`) : null, 1));
      const f = firstAt(c, y => y >= 0.5);
      out.push(f < 0 ? `prediction unchanged to k=${C.K}` : `prediction changes at k=${f}`);
    }
  }
  if (d.hits && vi < nv) { const n = C.docs[d.i].np; out.push(`planted in top ${n}: <b>${d.hits[vi]}/${n}</b>`); }
  return out.join('<br>');
}
function row(d, meta, vi){
  const r = d.maps[vi], v = displayValues(r, meta.signed, state.display === 'p8');
  const pl = d.planted || [];
  const words = d.tokens.map((t, k) => `<span class="w ${shade(v[k])}${pl[k] ? ' pl' : ''}">${esc(t)}</span>`).join(' ');
  const rank = meta.rank !== null && meta.rank !== undefined ? `#${meta.rank} ` : '';
  const score = meta.aopc !== null && meta.aopc !== undefined
    ? `<br><span class="dim">AOPC ${fix(meta.aopc, 3)} (all documents)</span>` : '';
  return `<tr data-variant="${esc(meta.name)}" data-vi="${vi}"><td class="name">${rank}<b>${esc(meta.name)}</b><br>` +
         `<span class="dim">${esc(meta.method)}, ${meta.signed ? 'signed' : 'unsigned'}</span>${score}</td>` +
         `<td class="side">${sideCell(d, meta, vi)}</td><td><div class="doc">${words}</div></td></tr>`;
}
function render(d){
  const doc = C.docs[d.i];
  const idx = C.variants.map((m, vi) => vi);
  if (state.order === 'config') idx.sort((a, b) => C.variants[a].config - C.variants[b].config);
  let info = `<b>${esc(doc.id)}</b> <span class="badge ${doc.set}">${doc.set}</span> true class <b>${esc(cls(doc.label))}</b>, ` +
             `predicted <b>${esc(cls(doc.pred))}</b>; ${doc.n} words`;
  if (C.planted) info += `, ${doc.np} planted (underlined)`;
  $('docinfo').innerHTML = info;
  let rows = idx.map(vi => row(d, C.variants[vi], vi)).join('');
  if (C.baseline) {
    rows += `<tr data-variant="${esc(C.baseline)}"><td class="name"><b>${esc(C.baseline)}</b><br>` +
            `<span class="dim">baseline: random order, no map</span></td>` +
            `<td class="side">${sideCell(d, null, C.variants.length)}</td>` +
            `<td class="dim">(the grey dashed curve in every row)</td></tr>`;
  }
  $('rows').innerHTML = rows;
  drawn = d;
  $('rows').className = 'rows' + (state.compact ? ' compact' : '');
  X.shown = doc.id; X.renders += 1;
  if (!X.ready) { X.ready = true; X.readyAt = performance.now(); }
}
function show(id){
  const k = byId[id];
  $('status').textContent = 'loading\u2026';
  return load(k).then(d => { if (state.doc === id) { render(d); $('status').textContent = ''; } return d; },
                      e => { $('status').innerHTML = `<span class="err">${esc(e.message)}</span>`; throw e; });
}
function rerender(){ writeHash(); const k = byId[state.doc]; if (cache[k]) render(cache[k]); }
X.show = id => go(id).then(() => X.shown);  // for scripts and tests: resolves once shown

// --- wiring --------------------------------------------------------------------------------------------------
function syncControls(){
  $('mode').value = state.mode;
  document.querySelector(`input[name=display][value=${state.display}]`).checked = true;
  document.querySelector(`input[name=order][value=${state.order}]`).checked = true;
}
function init(){
  $('cls').innerHTML = '<option value="">all classes</option>' + C.classes.map((c, i) => `<option value="${i}">${esc(c)}</option>`).join('');
  $('mode').innerHTML = C.modes.map(m => `<option>${esc(m)}</option>`).join('');
  $('legend').innerHTML = `unsigned ${bar(false)} 0 \u2026 1 &nbsp; signed ${bar(true)} \u22121 \u2026 +1 ` +
    `<span class="dim">(relevance / max|r| per map${C.planted ? '; planted words underlined green' : ''})</span>`;
  const first = readHash() || (C.docs.length ? C.docs[0].id : null);
  syncControls();
  $('q').addEventListener('input', onFilter);
  $('cls').addEventListener('change', onFilter);
  $('set').addEventListener('change', onFilter);
  $('doclist').addEventListener('change', () => go($('doclist').value));
  $('prev').addEventListener('click', () => step(-1));
  $('next').addEventListener('click', () => step(1));
  $('mode').addEventListener('change', () => { state.mode = $('mode').value; rerender(); });
  document.querySelectorAll('input[name=display]').forEach(e => e.addEventListener('change', () => { state.display = e.value; rerender(); }));
  document.querySelectorAll('input[name=order]').forEach(e => e.addEventListener('change', () => { state.order = e.value; rerender(); }));
  $('compact').addEventListener('change', () => { state.compact = $('compact').checked; rerender(); });
  $('rows').addEventListener('mouseover', ev => {  // a word's value as its tooltip, made when pointed at
    const w = ev.target;
    if (!w.classList || !w.classList.contains('w') || w.title || !drawn) return;
    const vi = +w.closest('tr').dataset.vi, k = Array.prototype.indexOf.call(w.parentNode.children, w);
    const d = drawn, r = d.maps[vi][k];
    w.title = `${k}: ${d.tokens[k]} = ${r === null ? 'NaN' : r}`;
  });
  window.addEventListener('hashchange', () => {  // a link or an edited URL: its document and display
    const d = readHash();
    syncControls();
    if (d !== null && d !== state.doc) { state.doc = d; fillList(); show(d); } else rerender();
  });
  state.doc = first;
  fillList();
  if (first === null) { $('status').textContent = 'no documents'; X.ready = true; return; }
  writeHash();
  show(first);
}
init();
})();
"""


def render_page(cat: dict, links: Mapping[str, str]) -> str:
    """The page: controls, legend, an empty row table that the script fills per document."""
    e = html.escape
    n_signed = sum(v["signed"] for v in cat["variants"])
    counts = ", ".join(f"{n} {s}" for s, n in sorted(cat["set_counts"].items()))
    nav = " · ".join(f"<a href='{e(href)}'>{e(text)}</a>" for text, href in links.items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{e(cat['title'])}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{e(cat['title'])}</h1>
<div class="ctl">
<fieldset><legend>document ({len(cat['docs'])}: {e(counts)})</legend>
<input id="q" type="search" placeholder="search id" size="14">
<select id="cls"></select>
<select id="set"><option value="">correct and misclassified</option><option value="correct">correct</option>
<option value="misclassified">misclassified</option></select>
<button id="prev" title="previous match">&#9664;</button><button id="next" title="next match">&#9654;</button>
<span id="count" class="dim"></span><br>
<select id="doclist" size="4"></select>
</fieldset>
<fieldset><legend>display</legend>
<label><input type="radio" name="display" value="raw"> raw</label>
<label title="the report's figures: normalise, then the 8th power (sign kept)"><input type="radio" name="display" value="p8"> 8th power (report)</label><br>
rows <label><input type="radio" name="order" value="ranking"> by ranking</label>
<label><input type="radio" name="order" value="config"> as configured</label><br>
<label><input type="checkbox" id="compact" checked> compact rows</label>
</fieldset>
<fieldset><legend>curves beside each row</legend>
replacement <select id="mode"></select><br>
<span class="dim">deleting the k = 0..{cat['K']} most relevant words<br>red: this method, grey dashed: random order</span>
</fieldset>
<div><div class="legend" id="legend"></div>
<div class="dim" style="font-size:11px">{len(cat['variants'])} methods ({n_signed} signed); {nav}</div></div>
</div>
</header>
<main>
<div class="docinfo"><span id="docinfo"></span> <span id="status" class="dim"></span></div>
<table class="rows compact" id="rows"></table>
</main>
<script type="application/json" id="catalogue">{_js(cat)}</script>
<script>{JS}</script>
</body>
</html>
"""


# --- synthetic stage outputs (tests, bench/compare_page.py) ----------------------------------------------
def synthetic_outputs(results: str | os.PathLike, dataset: str = "planted", model: str = "teacher",
                      n_docs: int = 140, n_variants: int = 23, n_words: int = 400, n_classes: int = 20,
                      K: int = 20, seed: int = 0) -> dict:
    """Write the files :func:`write_compare` reads, in the pipeline's layout under ``results``, for a made-up
    model: ``n_docs`` documents (the last tenth misclassified) of ``n_words`` words with planted flags,
    ``n_variants`` variants (every third signed), curves per document, a ranking and the classes. Returns
    the keyword arguments of :func:`write_compare`."""
    rng = np.random.default_rng(seed)
    res = Path(results)
    ex, ev = res / dataset / "explain" / model, res / dataset / "evaluate" / model
    n_wrong = max(1, n_docs // 10)
    labels = rng.integers(0, n_classes, n_docs)
    preds = labels.copy()
    preds[-n_wrong:] = (labels[-n_wrong:] + 1) % n_classes
    sets = ["correct"] * (n_docs - n_wrong) + ["misclassified"] * n_wrong
    vocab = [f"w{i}" for i in range(2000)] + ["<b>&'\"</script>"]  # words the page must escape
    tokens = [[vocab[j] for j in rng.integers(0, len(vocab), n_words)] for _ in range(n_docs)]
    planted = [(rng.random(n_words) < 0.01).tolist() for _ in range(n_docs)]
    ids = [f"doc{k:04d}" for k in range(n_docs)]
    ex.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "set": sets, "label": labels, "tokens": tokens, "ids": [list(range(n_words))] * n_docs,
                  "planted": planted, "pred": preds}).to_parquet(ex / "documents.parquet", index=False)
    variants = {f"method_{v:02d}": ("lrp_epsilon" if v % 3 == 0 else "rde") for v in range(n_variants)}
    relevance, per_doc, rows = {}, {}, []
    for v, name in enumerate(variants):
        maps = []
        for k in range(n_docs):
            r = rng.random(n_words) ** 4 + 3 * np.asarray(planted[k], dtype=float)
            maps.append((r - 0.5 if v % 3 == 0 else r).tolist())
        (ex / name).mkdir(exist_ok=True)
        pd.DataFrame({"id": ids, "set": sets, "tokens": tokens, "relevance": maps, "target": preds, "label": labels,
                      "pred": preds}).to_parquet(ex / name / "relevance.parquet", index=False)
        relevance[name] = str(ex / name / "relevance.parquet")
        rows.append({"variant": name, "method": variants[name], "aopc_accuracy_zero": round(float(rng.random()), 4),
                     "aopc_accuracy_zero_ci": "[0.1, 0.9]"})
    for name in [*variants, BASELINE]:
        (ev / name).mkdir(parents=True, exist_ok=True)
        cols: dict[str, list] = {"id": ids}
        for mode in ("zero", "gaussian"):
            prob = np.clip(1 - np.cumsum(rng.random((n_docs, K + 1)) * 0.1, axis=1), 0, 1)
            prob[:, 0] = 1.0
            prob[-n_wrong:] = np.nan
            changed = (rng.random((n_docs, K + 1)) < np.linspace(0, 1, K + 1)).astype(float)
            changed[:-n_wrong] = np.nan
            acc = np.where(np.isnan(prob), np.nan, (prob > 0.5).astype(float))
            cols[f"accuracy/{mode}"] = [list(x) for x in acc]
            cols[f"probability/{mode}"] = [list(x) for x in prob]
            cols[f"misclassified_changed/{mode}"] = [list(x) for x in changed]
        pd.DataFrame(cols).to_parquet(ev / name / "per_doc.parquet", index=False)
        per_doc[name] = str(ev / name / "per_doc.parquet")
    rows.append({"variant": BASELINE, "method": BASELINE, "aopc_accuracy_zero": 0.0, "aopc_accuracy_zero_ci": "[0, 0]"})
    rk = pd.DataFrame(rows).sort_values("aopc_accuracy_zero", ascending=False)
    rk.insert(0, "rank", np.arange(1, len(rk) + 1))
    rk.to_csv(ev / "ranking.csv", index=False)
    (res / dataset / "data").mkdir(parents=True, exist_ok=True)
    classes = [f"class {c}" for c in range(n_classes)]
    (res / dataset / "data" / "stats.json").write_text(json.dumps({"classes": classes}))
    return {"documents": str(ex / "documents.parquet"), "relevance": relevance, "per_doc": per_doc,
            "ranking": str(ev / "ranking.csv"), "stats": str(res / dataset / "data" / "stats.json"),
            "methods": variants, "title": f"{dataset} / {model}: {n_docs} documents x {n_variants} methods"}
