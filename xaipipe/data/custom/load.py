"""Loading a custom dataset: read, split and check its table(s) (:func:`load_custom`), and check the splits
again after cleaning (:func:`check_frames`).

A custom dataset's documents come from one file per split (``data.files: {train, test}``), or from one file
(``data.path``) split by a column (``split_column``, ``split_values``) or by a stratified, seeded hold-out
(``test_fraction``, :func:`xaipipe.data.split.split_stratified`).

Reading and checking (:func:`load_custom`), each problem a :class:`~xaipipe.errors.ConfigError` that names
the dataset, the file, the row and the fix:

* the file exists and parses in its format (``format: auto`` picks it from the extension, ``.gz``/``.bz2``/
  ``.xz`` compression included); text that is not valid in ``encoding`` names the line and data row
  (:mod:`.read`);
* the text, label, id and split columns exist (the message lists the columns that do);
* labels are integers or strings (integers sort numerically, ``class_names`` gives them display names;
  :mod:`.labels`); missing labels, fewer than two classes, an empty split and test labels never seen in
  training are errors (``unseen_test_labels: drop`` drops such test rows with a warning instead); so is a
  class with fewer training documents than a model's stratified validation split needs (two,
  :func:`.settings.val_split_problem`, checked before any job by :func:`.summary.resolve_section`);
* documents empty after cleaning are dropped with a warning that says how many
  (:func:`xaipipe.data.prepare._frame`), and counted in ``stats.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ...errors import ConfigError
from ..split import split_stratified
from .labels import _label_key, normalise_labels
from .read import _as_text, _missing, clean_text, detect_format, read_table, table_paths

# the package's one logger, named as before the split: rules/common.smk prints its messages while the
# Snakefile parses, the tests listen to it, and log lines name it
log = logging.getLogger("xaipipe.data.custom")

KIND = "custom"
NO_PAPER_NOTE = "custom dataset (the user's own table): there is no published figure to compare with"


def _rows_text(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


# --- loading ------------------------------------------------------------------------------------------
def _require_columns(df: pd.DataFrame, needed: dict[str, str], path: Path, where: str, data: dict) -> None:
    cols = [c for c in df.columns if c != "_row"]
    missing = {key: col for key, col in needed.items() if col not in cols}
    if not missing:
        return
    hint = ""
    if len(cols) == 1 and detect_format(path, data.get("format", "auto")) in ("csv", "tsv"):
        hint = (f" Only one column was found: is the delimiter right? (set {where}.delimiter or {where}.format)")
    elif data.get("column_names") is None and detect_format(path, data.get("format", "auto")) in ("csv", "tsv"):
        hint = f" If the file has no header row, name its columns with {where}.column_names."
    raise ConfigError(
        f"{where}: {path} has no column "
        + ", ".join(f"{col!r} ({where}.{key})" for key, col in missing.items())
        + f"; its columns are {cols}.{hint}")


def _split_key(v: Any) -> str:
    """A split value as text; integer-like values (``1``, ``1.0``, ``"1"``) compare equal."""
    key = _label_key(v)
    return "" if key is None else str(key[1])


def _split_column(df: pd.DataFrame, data: dict, path: Path, where: str) -> dict[str, pd.DataFrame]:
    col = data["split_column"]
    spec = data.get("split_values") or {}
    values = {s: [_split_key(v) for v in ([spec[s]] if isinstance(spec.get(s), (str, int)) else spec.get(s, [s]))]
              for s in ("train", "test")}
    both = set(values["train"]) & set(values["test"])
    if both:
        raise ConfigError(f"{where}.split_values: {sorted(both)} listed for both train and test")
    split = df[col].map(_split_key)
    out = {s: df[split.isin(values[s])] for s in ("train", "test")}
    other = split[~split.isin(values["train"] + values["test"])]
    if len(other):
        counts = other.value_counts()
        log.warning("%s: ignoring %d rows of %s whose %r is none of %s: %s (list them under %s.split_values to "
                    "use them)", where, len(other), path, col, values["train"] + values["test"],
                    ", ".join(f"{v!r} ({n})" for v, n in counts.items()), where)
    for s, part in out.items():
        if part.empty:
            found = sorted(split.unique().tolist())
            raise ConfigError(f"{where}: the {s} split is empty: no row of {path} has {col!r} in {values[s]} "
                              f"(values found: {found[:20]}). Fix {where}.split_values.{s}")
    return out


class Part(NamedTuple):
    """The rows of one split, with the role of the file they come from (train, test or table)."""

    rows: pd.DataFrame
    role: str
    path: Path


def _read_parts(where: str, data: dict, paths: dict[str, Path], needed: dict[str, str]) -> dict[str, Part]:
    """Read the file(s) and split them: ``{"train", "test"}``, or ``{"all"}`` for a hold-out still to draw."""
    split_col = data.get("split_column")
    if "table" in paths:
        p = paths["table"]
        df = read_table(p, data, where)
        _require_columns(df, {**needed, **({"split_column": split_col} if split_col else {})}, p, where, data)
        if not split_col:
            return {"all": Part(df, "table", p)}
        parts = {s: Part(rows, "table", p) for s, rows in _split_column(df, data, p, where).items()}
    else:
        parts = {}
        for role in ("train", "test"):
            df = read_table(paths[role], data, where)
            _require_columns(df, needed, paths[role], where, data)
            parts[role] = Part(df, role, paths[role])
    for s, part in parts.items():
        if part.rows.empty:
            raise ConfigError(f"{where}: the {s} split is empty ({part.path} has no data row)")
    return parts


def _read_labels(where: str, parts: dict[str, Part], label_col: str) -> tuple[dict[str, list], str]:
    """Labels of every split, of one type over all rows (:func:`normalise_labels`); none may be missing."""
    everything, label_type = normalise_labels([v for part in parts.values() for v in part.rows[label_col].tolist()])
    labels, offset = {}, 0
    for s, part in parts.items():
        labels[s] = everything[offset:offset + len(part.rows)]
        offset += len(part.rows)
        miss = [int(r) for r, lab in zip(part.rows["_row"], labels[s]) if lab is None]
        if miss:
            raise ConfigError(f"{where}: {len(miss)} rows of {part.path} have no label in {label_col!r} (rows "
                              f"{_rows_text(miss)}); fix or remove them")
    return labels, label_type


def _holdout(where: str, data: dict, part: Part, labels: list, seed: int
             ) -> tuple[dict[str, Part], dict[str, list]]:
    """The stratified, seeded ``test_fraction`` hold-out of one file (the AG News re-split's rule)."""
    y = np.array([str(v) for v in labels])
    counts = pd.Series(y).value_counts()
    if (counts < 2).any():
        raise ConfigError(f"{where}: test_fraction needs at least two rows per label; label(s) "
                          f"{counts[counts < 2].index.tolist()} occur once in {part.path}. Fix: remove them or "
                          f"use split_column / files")
    try:
        tr, te = split_stratified(y, float(data["test_fraction"]), seed)
    except ValueError as exc:
        raise ConfigError(f"{where}.test_fraction: cannot split {len(y)} rows into a stratified hold-out: "
                          f"{exc}") from None
    return ({"train": part._replace(rows=part.rows.iloc[tr]), "test": part._replace(rows=part.rows.iloc[te])},
            {"train": [labels[i] for i in tr], "test": [labels[i] for i in te]})


def _classes(where: str, data: dict, train: Part, labels: list, label_type: str, label_col: str) -> list:
    """The classes in index order: ``data.classes`` or the sorted training labels; at least two."""
    seen = sorted(set(labels))
    if not data.get("classes"):
        classes = seen
    else:
        classes, ctype = normalise_labels(list(data["classes"]))
        if None in classes or len(set(classes)) != len(classes):
            raise ConfigError(f"{where}.classes: empty or repeated entries in {data['classes']}")
        if ctype != label_type:
            raise ConfigError(f"{where}.classes lists {ctype} labels but {label_col!r} holds {label_type} labels")
        unknown = sorted(set(labels) - set(classes), key=str)
        if unknown:
            rows = [int(r) for r, v in zip(train.rows["_row"], labels) if v in set(unknown)]
            raise ConfigError(f"{where}: training labels {unknown} (rows {_rows_text(rows)} of {train.path}) are "
                              f"not in {where}.classes {classes}")
        unused = [c for c in classes if c not in set(seen)]
        if unused:
            raise ConfigError(f"{where}.classes lists {unused}, which no training row has; a class needs "
                              f"training documents (remove it from classes)")
    if len(classes) < 2:
        raise ConfigError(f"{where}: the training split has only {len(classes)} class ({classes}) in "
                          f"{label_col!r}; a classifier needs at least two")
    return classes


def _unseen_test_labels(where: str, data: dict, test: Part, labels: list, classes: list
                        ) -> tuple[Part, list, int]:
    """Test rows whose label never occurs in training: an error, or (``unseen_test_labels: drop``) dropped."""
    known = set(classes)
    unseen = [(int(r), v) for r, v in zip(test.rows["_row"], labels) if v not in known]
    if not unseen:
        return test, labels, 0
    vals = sorted({v for _r, v in unseen}, key=str)
    if data.get("unseen_test_labels", "error") != "drop":
        raise ConfigError(
            f"{where}: test label(s) {vals} never occur in the training split ({len(unseen)} rows of "
            f"{test.path}: {_rows_text([r for r, _v in unseen])}); the model cannot predict them. Fix: correct "
            f"the labels, move such rows into training, or set {where}.unseen_test_labels: drop")
    keep = np.array([v in known for v in labels])
    log.warning("%s: dropping %d test rows of %s whose labels %s never occur in training "
                "(unseen_test_labels: drop)", where, len(unseen), test.path, vals)
    if not keep.any():
        raise ConfigError(f"{where}: the test split is empty once rows with labels unseen in training are dropped")
    return test._replace(rows=test.rows[keep]), [v for v, k in zip(labels, keep) if k], len(unseen)


def _class_names(where: str, data: dict, classes: list) -> list[str]:
    """Display names: ``data.class_names`` (label value -> name), else the label values as text."""
    names = {str(k).strip(): str(v) for k, v in (data.get("class_names") or {}).items()}
    bad = sorted(set(names) - {str(c) for c in classes})
    if bad:
        raise ConfigError(f"{where}.class_names names {bad}, which are not labels of the data "
                          f"(labels: {[str(c) for c in classes]})")
    out = [names.get(str(c), str(c)) for c in classes]
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}.class_names: two classes share a display name ({out})")
    return out


def _documents(where: str, data: dict, parts: dict[str, Part], text_cols: list[str]
               ) -> dict[str, tuple[list[str], list[str]]]:
    """Ids (``id_column``, unique over both splits, else ``<file role>-<row>``) and cleaned texts (the
    ``text_columns`` joined by ``text_separator``) per split."""
    id_col, encoding = data.get("id_column"), data.get("encoding", "utf-8")
    clean = {k: data[k] for k in ("normalize", "strip_html", "strip_urls") if k in data}
    sep = data.get("text_separator", "\n")
    out, seen = {}, {}
    for s in ("train", "test"):
        df, role, p = parts[s]
        rows = df["_row"].tolist()
        if id_col:
            ids = []
            for r, v in zip(rows, df[id_col].tolist()):
                if _missing(v) or not str(v).strip():
                    raise ConfigError(f"{where}: row {r} of {p} has no id in {id_col!r}; ids must be set and unique")
                ids.append(str(v).strip())
        else:
            ids = [f"{role}-{r}" for r in rows]
        for i, r in zip(ids, rows):
            if i in seen:
                raise ConfigError(f"{where}: id {i!r} occurs twice ({seen[i][0]} row {seen[i][1]} and {p} row "
                                  f"{r}); ids in {id_col!r} must be unique")
            seen[i] = (str(p), r)
        columns = [df[c].tolist() for c in text_cols]
        texts = []
        for j, r in enumerate(rows):
            fields = (_as_text(col[j], encoding, r, c, str(p), where).strip() for col, c in zip(columns, text_cols))
            texts.append(clean_text(sep.join(f for f in fields if f), **clean))
        out[s] = (ids, texts)
    return out


def table_inputs(name: str, section: dict | None) -> dict[str, str]:
    """The inputs of a dataset's fetch job (rules/data.smk): for a custom dataset its table(s), role ->
    path as in :func:`~xaipipe.data.custom.read.table_paths` (so editing one reruns that dataset's chain);
    ``{}`` for any other section (the built-in datasets)."""
    section = section or {}
    if section.get("kind") != KIND:
        return {}
    return {role: str(path) for role, path in table_paths(name, section["data"]).items()}


def load_custom(name: str, data: dict, paths: dict[str, str | Path], seed: int = 0
                ) -> tuple[dict[str, tuple], list[str], dict]:
    """Read, split and check a custom dataset.

    ``paths`` maps ``train``/``test`` (one file per split) or ``table`` (one file) to the files. Returns
    ``({split: (ids, texts, labels)}, class_names, info)`` in the form :func:`xaipipe.data.prepare.prepare_text`
    builds its frames from: ids unique strings (``id_column``, else ``<file role>-<row>``), texts the joined,
    cleaned ``text_columns``, labels 0-based class indices. ``info`` (recorded in ``stats.json``) holds the
    original label value of every class, the label type, how the splits were made and the rows dropped."""
    where = f"{name}.data"
    text_cols = data.get("text_columns")
    text_cols = [text_cols] if isinstance(text_cols, str) else list(text_cols or [])
    label_col = data.get("label_column")
    if not text_cols or not label_col:
        raise ConfigError(f"{where}: set text_columns (one or more columns joined into the document) and "
                          f"label_column")
    needed = {"label_column": label_col, **{f"text_columns[{i}]": c for i, c in enumerate(text_cols)}}
    if data.get("id_column"):
        needed["id_column"] = data["id_column"]

    parts = _read_parts(where, data, {role: Path(p) for role, p in paths.items()}, needed)
    labels, label_type = _read_labels(where, parts, label_col)
    if "all" in parts:
        parts, labels = _holdout(where, data, parts["all"], labels["all"], seed)
    classes = _classes(where, data, parts["train"], labels["train"], label_type, label_col)
    parts["test"], labels["test"], dropped = _unseen_test_labels(where, data, parts["test"], labels["test"], classes)
    class_names = _class_names(where, data, classes)
    index = {c: i for i, c in enumerate(classes)}
    out = {s: (*docs, np.array([index[v] for v in labels[s]], dtype=np.int64))
           for s, docs in _documents(where, data, parts, text_cols).items()}
    info = {
        "kind": KIND, "label_column": label_col, "text_columns": text_cols, "id_column": data.get("id_column"),
        "label_type": label_type, "label_values": list(classes),
        "split": "files" if "train" in paths else ("column" if data.get("split_column") else "test_fraction"),
        "rows": {s: int(len(parts[s].rows)) for s in ("train", "test")},
        "dropped_unseen_test_labels": dropped,
        "comparable_with_paper": False, "note": NO_PAPER_NOTE,
    }
    return out, class_names, info


def check_frames(name: str, frames: dict[str, pd.DataFrame], class_names: list[str]) -> None:
    """Checks after cleaning (documents empty after cleaning are gone): no split empty, at least two classes
    in training, every test class still present in training."""
    where = f"{name}.data"
    for s, df in frames.items():
        if df.empty:
            raise ConfigError(f"{where}: every document of the {s} split is empty after cleaning (no word left "
                              f"by the tokeniser); check text_columns, encoding and the tokeniser settings "
                              f"(min_token_len, max_token_len)")
    train = set(frames["train"]["label"].tolist())
    if len(train) < 2:
        raise ConfigError(f"{where}: after dropping documents that are empty after cleaning, the training split "
                          f"has only {len(train)} class; a classifier needs at least two")
    lost = sorted(set(frames["test"]["label"].tolist()) - train)
    if lost:
        raise ConfigError(f"{where}: class(es) {[class_names[i] for i in lost]} have test documents but every "
                          f"training document of them is empty after cleaning; fix the text or the tokeniser "
                          f"settings")


__all__ = ["KIND", "NO_PAPER_NOTE", "Part", "check_frames", "load_custom", "table_inputs"]
