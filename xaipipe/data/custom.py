"""Bring your own data: any labelled text table as a dataset of the pipeline (``kind: custom``).

A custom dataset is a config section of any name (``reviews: {kind: custom, data: {...}}``, listed under
``datasets``) whose documents come from the user's own CSV, TSV, JSON Lines or parquet file(s): one file per
split (``data.files: {train, test}``), or one file (``data.path``) split by a column (``split_column``,
``split_values``) or by a stratified, seeded hold-out (``test_fraction``). It then runs through every stage
exactly like the built-in text datasets (the report's AG News and 20 Newsgroups, sections 2.1-2.2): the
same tidy ``train.parquet``/``test.parquet`` and ``stats.json``, embeddings, teachers and students,
relevance maps and deletion curves.

Reading and checking (:func:`load_custom`), each problem a :class:`~xaipipe.errors.ConfigError` that names
the dataset, the file, the row and the fix:

* the file exists and parses in its format (``format: auto`` picks it from the extension, ``.gz``/``.bz2``/
  ``.xz`` compression included); text that is not valid in ``encoding`` names the line and data row;
* the text, label, id and split columns exist (the message lists the columns that do);
* labels are integers or strings (integers sort numerically, ``class_names`` gives them display names);
  missing labels, fewer than two classes, an empty split and test labels never seen in training are errors
  (``unseen_test_labels: drop`` drops such test rows with a warning instead); so is a class with fewer
  training documents than a model's stratified validation split needs (two, :func:`val_split_problem`);
* documents empty after cleaning are dropped with a warning that says how many
  (:func:`xaipipe.data.prepare._frame`), and counted in ``stats.json``.

Text: the ``text_columns`` of a row joined by ``text_separator`` (several fields, like AG News' title and
description), cleaned language-agnostically (:func:`clean_text`: Unicode normal form, optional HTML and URL
removal) and tokenised by the shared :func:`xaipipe.data.text.tokenize` (runs of letters of any script, or
digits), so a word means the same at training and explanation time.

Settings derived from the data (:func:`resolve_section`, run by the Snakefile before any job, cached by
file size, modification time and settings): ``max_len: auto`` is ``length_factor`` x ``length_statistic``
of the training documents' lengths rounded to ten words -- the report's rule ("we chose the length as 80,
since the mean length of the documents was around 35", section 2.2; 2 x mean gives 80 for AG News and
400 for 20 Newsgroups); ``channels: auto`` is 512 for a teacher and ``max(2, round(0.4 x classes))`` for a
student (the report's students: 8 channels for 20 classes, 2 for 4); ``embedding.dim: auto`` is 300 (the
report) for a training corpus of at least a million tokens, else 100, ``embedding.min_count: auto`` 2,
else 1, and ``embedding.epochs: auto`` as many passes as give about five million training tokens (at
least 5, at most 1000) -- fewer leave the vectors of a small corpus all pointing one way. A model named
``student...`` (or with ``role: student``) gets the student defaults, any other the teacher's.
"""

from __future__ import annotations

import bz2
import copy
import csv
import gzip
import hashlib
import html
import io
import json
import logging
import lzma
import math
import re
import unicodedata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import write_json

log = logging.getLogger(__name__)

KIND = "custom"
RESERVED_NAMES = ("summary",)  # results/summary/ holds the cross-dataset tables
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
CACHE_VERSION = 3  # bump when reading, cleaning, the summary or the derived settings change

# role defaults of a custom dataset's models (quick scale, like config.yaml's ng20/agnews models)
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "teacher": {"channels": "auto", "kernel_size": 5, "hidden": [256], "dropout": 0.5, "max_len": "auto",
                "length_statistic": "mean", "length_factor": 2.0, "epochs": 15, "batch_size": 50, "lr": 0.002,
                "weight_decay": 0.0, "optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 0.5,
                "label_smoothing": 0.0, "grad_clip": None, "val_fraction": 0.1, "patience": 5, "min_steps": 1000},
    "student": {"channels": "auto", "kernel_size": 5, "hidden": [], "dropout": 0.0, "max_len": "auto",
                "length_statistic": "mean", "length_factor": 2.0, "epochs": 12, "batch_size": 50, "lr": 0.003,
                "weight_decay": 0.0, "optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 0.5,
                "label_smoothing": 0.0, "grad_clip": None, "val_fraction": 0.1, "patience": 4, "min_steps": 1000},
}
TEACHER_CHANNELS = 512
NO_PAPER_NOTE = "custom dataset (the user's own table): there is no published figure to compare with"
LARGE_CORPUS_TOKENS = 1_000_000
EMBEDDING_TOKEN_PASSES = 5_000_000  # tokens word2vec/fastText see in total with epochs: auto (see below)

_INT_RE = re.compile(r"^[+-]?\d+$")
_TAG_RE = re.compile(r"<[^<>]{0,200}>")
_URL_RE = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.IGNORECASE)
_SPACE_RE = re.compile(r"[^\S\n]+")


# --- files --------------------------------------------------------------------------------------------
def table_paths(name: str, data: dict) -> dict[str, Path]:
    """The user's file(s) of a custom dataset: ``{"train": p, "test": p}`` (``data.files``) or
    ``{"table": p}`` (``data.path``). Relative paths are relative to the working directory. Raises when the
    layout is ambiguous or a file is missing."""
    files, path = data.get("files"), data.get("path")
    if bool(files) == bool(path):
        raise ConfigError(
            f"{name}.data: give either 'files: {{train: FILE, test: FILE}}' (one file per split) or 'path: FILE' "
            f"(one file, split by 'split_column' or 'test_fraction'), not {'both' if files else 'neither'}")
    if files:
        if data.get("split_column") or data.get("test_fraction"):
            raise ConfigError(f"{name}.data: split_column and test_fraction split one file (data.path); with "
                              f"one file per split (data.files) leave them out")
        out = {role: Path(files[role]) for role in ("train", "test")}
        keys = {role: f"{name}.data.files.{role}" for role in out}
    else:
        if data.get("split_column") and data.get("test_fraction"):
            raise ConfigError(f"{name}.data: give split_column or test_fraction, not both")
        out, keys = {"table": Path(path)}, {"table": f"{name}.data.path"}
        if not data.get("split_column") and not data.get("test_fraction"):
            raise ConfigError(
                f"{name}.data.path is one file: say how to split it, by a column ('split_column: COLUMN', values "
                f"in 'split_values') or by a stratified hold-out ('test_fraction: 0.2'), or give one file per "
                f"split ('files: {{train: FILE, test: FILE}}')")
    for role, p in out.items():
        if not p.is_file():
            where = f"{p} (working directory {Path.cwd()})" if not p.is_absolute() else str(p)
            raise ConfigError(f"{keys[role]}: file {where} does not exist or is not a file; fix the path "
                              f"(relative paths are relative to the working directory)")
    return out


def table_inputs(name: str, section: dict | None) -> dict[str, str]:
    """The inputs of a dataset's fetch job (rules/data.smk): for a custom dataset its table(s), role ->
    path as in :func:`table_paths` (so editing one reruns that dataset's chain); ``{}`` for any other
    section (the built-in datasets)."""
    section = section or {}
    if section.get("kind") != KIND:
        return {}
    return {role: str(path) for role, path in table_paths(name, section["data"]).items()}


def detect_format(path: str | Path, fmt: str = "auto") -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``parquet``: ``fmt`` unless ``auto``, else from the extension (a
    trailing ``.gz``/``.bz2``/``.xz`` is skipped)."""
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _OPENERS:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise ConfigError(f"cannot tell the format of {path} from its extension; set data.format to one of "
                      f"csv, tsv, jsonl, parquet (known extensions: {', '.join(sorted(FORMATS))})")


def _read_bytes(path: Path) -> bytes:
    opener = _OPENERS.get(path.suffix.lower())
    if opener is None:
        return path.read_bytes()
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise ConfigError(f"cannot decompress {path} ({path.suffix}): {exc}; the file is truncated or not "
                          f"{path.suffix}-compressed") from None


def _encoding_error(raw: bytes, exc: UnicodeDecodeError, path: Path, fmt: str, encoding: str, header: bool,
                    delimiter: str, quotechar: str | None, where: str) -> ConfigError:
    """An error naming the line and the data row (1 = first row after the header) of an undecodable byte."""
    start = exc.start
    line = raw.count(b"\n", 0, start) + 1
    prefix = raw[:start].decode(encoding, errors="replace")
    row: int | None
    if fmt == "jsonl":
        row = sum(1 for s in prefix.split("\n")[:-1] if s.strip()) + 1
    else:
        try:
            kw = {"quoting": csv.QUOTE_NONE} if quotechar is None else {"quotechar": quotechar}
            records = sum(1 for r in csv.reader(io.StringIO(prefix, newline=""), delimiter=delimiter, **kw) if r)
        except csv.Error:
            records = None
        if records is None:
            row = None
        else:
            if not prefix or prefix.endswith(("\n", "\r")):
                records += 1  # the bad byte opens a new record
            row = records - (1 if header else 0)
    bad = raw[start:exc.end]
    context = raw[max(0, start - 30):start + 30].decode(encoding, errors="replace").replace("\n", "\\n")
    where_row = f"line {line}" + (f", data row {row}" if row is not None and row >= 1 else
                                  " (the header)" if row == 0 else "")
    return ConfigError(
        f"{where}: {path} is not valid {encoding}: byte{'s' if len(bad) > 1 else ''} {bad.hex(' ')} at "
        f"{where_row} (near {context!r}). Fix: set {where}.encoding to the file's encoding (for example "
        f"latin-1 or cp1252) or re-save the file as UTF-8")


def read_table(path: str | Path, data: dict | None = None, where: str = "data") -> pd.DataFrame:
    """Read one table with the reading options of ``data`` (``format``, ``encoding``, ``delimiter``,
    ``quotechar``, ``column_names``); adds ``_row``, the 1-based data row (header excluded)."""
    data = data or {}
    path = Path(path)
    fmt = detect_format(path, data.get("format", "auto"))
    encoding = data.get("encoding", "utf-8")
    if fmt == "parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a file that is not parquet
            raise ConfigError(f"{where}: cannot read {path} as parquet: {exc}. Fix: check the file, or set "
                              f"{where}.format if it is not parquet") from None
        df.columns = [str(c) for c in df.columns]
    else:
        raw = _read_bytes(path)
        delimiter = data.get("delimiter") or ("\t" if fmt == "tsv" else ",")
        quotechar = data.get("quotechar", '"')
        names = data.get("column_names")
        codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as exc:
            raise _encoding_error(raw, exc, path, fmt, encoding, header=not names, delimiter=delimiter,
                                  quotechar=quotechar, where=where) from None
        except LookupError:
            raise ConfigError(f"{where}.encoding: unknown encoding {encoding!r} (use a Python codec name such as "
                              f"utf-8, latin-1, cp1252, utf-16)") from None
        df = _parse_jsonl(text, path, where) if fmt == "jsonl" else _parse_delimited(
            text, path, fmt, delimiter, quotechar, names, where)
    df = df.reset_index(drop=True)
    df["_row"] = np.arange(1, len(df) + 1)
    return df


def _parse_delimited(text: str, path: Path, fmt: str, delimiter: str, quotechar: str | None,
                     names: list[str] | None, where: str) -> pd.DataFrame:
    kw: dict[str, Any] = {"quoting": csv.QUOTE_NONE} if quotechar is None else {"quotechar": quotechar}
    try:
        return pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                           header=None if names else 0, names=names, skip_blank_lines=True, **kw)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{where}: {path} is empty (no header and no rows)") from None
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        raise ConfigError(
            f"{where}: cannot parse {path} as {fmt.upper()} (delimiter {delimiter!r}): {str(exc).strip()}. Fix: "
            f"quote fields that contain the delimiter or line breaks, or set {where}.delimiter / "
            f"{where}.format / {where}.column_names to match the file") from None


def _parse_jsonl(text: str, path: Path, where: str) -> pd.DataFrame:
    records = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: {path} line {lineno} (data row {len(records) + 1}) is not valid JSON: "
                              f"{exc.msg} at column {exc.colno}. Fix: one JSON object per line") from None
        if not isinstance(rec, dict):
            raise ConfigError(f"{where}: {path} line {lineno} (data row {len(records) + 1}) is a JSON "
                              f"{type(rec).__name__}, not an object; JSON Lines needs one object per line")
        records.append(rec)
    if not records:
        raise ConfigError(f"{where}: {path} has no JSON object (empty file)")
    return pd.DataFrame.from_records(records)


# --- cleaning -----------------------------------------------------------------------------------------
def clean_text(text: str, normalize: str = "NFC", strip_html: bool = False, strip_urls: bool = False) -> str:
    """Language-agnostic cleaning before tokenisation: Unicode normal form (``NFKC`` also folds full-width
    forms and ligatures), optionally HTML entities and ``<tags>`` removed and URLs removed; line ends
    normalised and runs of other white space collapsed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize(normalize, text)
    if strip_html:
        text = _TAG_RE.sub(" ", html.unescape(text))
    if strip_urls:
        text = _URL_RE.sub(" ", text)
    return _SPACE_RE.sub(" ", text).strip()


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _as_text(v: Any, encoding: str, row: int, column: str, path: str, where: str) -> str:
    if _missing(v):
        return ""
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode(encoding)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: {path} row {row}, column {column!r} is not valid {encoding} (byte "
                              f"{bytes(v)[exc.start]:#04x} at position {exc.start}). Fix: set {where}.encoding to "
                              f"the column's encoding") from None
    if isinstance(v, (list, tuple, np.ndarray)):  # a pre-tokenised column
        return " ".join(str(x) for x in v if not _missing(x))
    return str(v)


# --- labels -------------------------------------------------------------------------------------------
def _label_key(v: Any) -> tuple[str, Any] | None:
    """``("int", n)`` for integer-like values (ints, integral floats, digit strings), ``("str", s)`` for the
    rest, None for a missing label."""
    if _missing(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return ("str", str(bool(v)))
    if isinstance(v, (int, np.integer)):
        return ("int", int(v))
    if isinstance(v, (float, np.floating)):
        return ("int", int(v)) if float(v).is_integer() else ("str", repr(float(v)))
    s = str(v).strip()
    if not s:
        return None
    return ("int", int(s)) if _INT_RE.match(s) else ("str", s)


def normalise_labels(values: list[Any]) -> tuple[list[Any], str]:
    """Labels as all ints (when every value is integer-like) or all strings; returns (labels, type)."""
    keys = [_label_key(v) for v in values]
    kind = "int" if all(k is None or k[0] == "int" for k in keys) else "str"
    return [None if k is None else (k[1] if kind == "int" else str(k[1])) for k in keys], kind


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
    from .prepare import split_stratified

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


# --- the manifest (fetch_data) ------------------------------------------------------------------------
def custom_manifest(name: str, paths: dict[str, str | Path]) -> dict:
    """Manifest of a custom dataset: each user file with its sha256 (no published checksum to check)."""
    from ..io import file_digest

    items = {}
    for role, p in paths.items():
        p = Path(p)
        items[role] = {"path": str(p.resolve()), "source": "user", "sha256": file_digest(p),
                       "size": p.stat().st_size}
    return {"dataset": name, "kind": KIND, "items": items, "missing_optional": [], "verified": False,
            "note": "user-supplied files: sha256 recorded, no published checksum to verify against"}


# --- settings derived from the data -------------------------------------------------------------------
def _statistic(summary: dict, stat: str) -> float:
    length = summary["train_length"]
    if stat == "mean":
        return float(length["mean"])
    if stat == "median":
        return float(length["percentiles"][50])
    m = re.fullmatch(r"p(\d{1,3})", stat)
    if not m or int(m.group(1)) > 100:
        raise ConfigError(f"length_statistic {stat!r}: use mean, median or pNN (a percentile, p0..p100)")
    return float(length["percentiles"][int(m.group(1))])


def auto_max_len(summary: dict, statistic: str = "mean", factor: float = 2.0) -> int:
    """``factor`` x ``statistic`` of the training lengths, rounded to the nearest ten words (at least 10)."""
    value = factor * _statistic(summary, statistic)
    return max(10, int(math.floor(value / 10.0 + 0.5)) * 10)


def auto_channels(role: str, n_classes: int) -> int:
    """Teacher: 512; student: ``max(2, round(0.4 x classes))`` (the report: 8 for 20 classes, 2 for 4)."""
    if role == "student":
        return max(2, int(math.floor(0.4 * n_classes + 0.5)))
    return TEACHER_CHANNELS


def model_role(model: str, cfg: dict) -> str:
    return cfg.get("role") or ("student" if model.startswith("student") else "teacher")


def resolve_models(name: str, models: dict, summary: dict) -> tuple[dict, list[str]]:
    """Fill role defaults and replace ``auto`` by values derived from the data; returns (models, notes)."""
    out, notes = {}, []
    for model, cfg in models.items():
        role = model_role(model, cfg)
        m = {**copy.deepcopy(ROLE_DEFAULTS[role]), **copy.deepcopy(cfg), "role": role}
        if m["max_len"] == "auto":
            m["max_len"] = auto_max_len(summary, m["length_statistic"], float(m["length_factor"]))
            notes.append(f"{name}.models.{model}.max_len: auto -> {m['max_len']} ({m['length_factor']:g} x "
                         f"{m['length_statistic']} training length "
                         f"{_statistic(summary, m['length_statistic']):.1f}, rounded to ten)")
        if m["channels"] == "auto":
            m["channels"] = auto_channels(role, summary["n_classes"])
            notes.append(f"{name}.models.{model}.channels: auto -> {m['channels']} ({role}, "
                         f"{summary['n_classes']} classes)")
        out[model] = m
    return out, notes


def auto_embedding_epochs(train_tokens: int) -> int:
    """Passes over the training corpus so that word2vec/fastText see about ``EMBEDDING_TOKEN_PASSES`` tokens
    (at least 5, gensim's default; at most 1000): on a small corpus a few passes leave every vector
    pointing the same way (cosine ~1 between any two words) and, centred, along one direction (effective
    rank ~1): the classifier cannot learn. Measured on a 1,200-document, 84,000-token table (6 classes):
    fastText with 6 passes (half a million tokens, the earlier rule) effective rank 1.1 and a teacher at
    chance; with 60 passes (five million) effective rank 30 and the teacher at 91 %."""
    return int(min(1000, max(5, math.ceil(EMBEDDING_TOKEN_PASSES / max(train_tokens, 1)))))


def resolve_embedding(name: str, embedding: dict, summary: dict) -> tuple[dict, list[str]]:
    """Replace ``auto`` in ``dim``, ``min_count`` and ``epochs`` by values derived from the corpus size."""
    emb, notes = copy.deepcopy(embedding), []
    tokens = summary["train_tokens"]
    large = tokens >= LARGE_CORPUS_TOKENS
    derived = {"dim": 300 if large else 100, "min_count": 2 if large else 1, "epochs": auto_embedding_epochs(tokens)}
    for key, value in derived.items():
        if emb.get(key, "auto") == "auto":
            emb[key] = value
            notes.append(f"{name}.embedding.{key}: auto -> {value} ({tokens:,} training tokens)")
    return emb, notes


# --- the stratified validation split ------------------------------------------------------------------
def val_split_problem(counts: dict[str, int], fraction: float) -> str | None:
    """Why the stratified validation split of training (``xaipipe.train.val_split``: scikit-learn's
    ``train_test_split(stratify=labels, test_size=fraction)``) is impossible for these training documents
    per class, or None. The conditions are scikit-learn's: every class needs two documents, and both parts
    must be able to hold every class."""
    fraction = float(fraction or 0)
    present = {c: int(n) for c, n in counts.items() if n > 0}
    if not fraction or not present:
        return None
    single = [c for c, n in present.items() if n < 2]
    if single:
        few = ", ".join(f"{c!r}" for c in single[:5]) + (f" and {len(single) - 5} more" if len(single) > 5 else "")
        return (f"class {few} {'has' if len(single) == 1 else 'have'} only 1 training document; the stratified "
                f"validation split (val_fraction = {fraction:g}) needs at least 2 per class")
    n, k = sum(present.values()), len(present)
    n_val = math.ceil(fraction * n)
    if n_val < k or n - n_val < k:
        part = "validation" if n_val < k else "training"
        size = n_val if n_val < k else n - n_val
        return (f"val_fraction = {fraction:g} of {n} training documents leaves a {part} part of {size} "
                f"document(s), fewer than the {k} classes a stratified split puts in each part")
    return None


def check_val_splits(name: str, models: dict, summary: dict) -> None:
    """Every model's ``val_fraction`` against the training documents per class (before any job: otherwise
    training stops with a scikit-learn traceback after data, embedding and upstream jobs ran)."""
    counts = summary.get("train_class_counts")
    if counts is None:
        return
    per_class = {str(c): n for c, n in zip(summary["classes"], counts)}
    for model, cfg in models.items():
        problem = val_split_problem(per_class, cfg.get("val_fraction", 0.1))
        if problem:
            raise ConfigError(f"config: {name}.models.{model}: {problem}; add training documents (or drop the "
                              f"class), or set {name}.models.{model}.val_fraction: 0 (no validation split, "
                              f"no early stopping)")


# --- the check before any job -------------------------------------------------------------------------
def summarise(name: str, data: dict, paths: dict[str, Path], seed: int) -> dict:
    """Build the prepared splits in memory (every check of :func:`load_custom` and :func:`check_frames`)
    and summarise what the derived settings need."""
    from .prepare import build_text_frames

    manifest = {"dataset": name, "kind": KIND, "items": {r: {"path": str(p)} for r, p in paths.items()}}
    frames, classes, extra = build_text_frames(name, manifest, data, seed)
    n = frames["train"]["n_tokens"].to_numpy()
    per_class = frames["train"]["label"].value_counts()
    return {
        "n_classes": len(classes), "classes": classes,
        "train_class_counts": [int(per_class.get(i, 0)) for i in range(len(classes))],
        "n_docs": {s: int(len(df)) for s, df in frames.items()},
        "dropped_empty": extra["dropped_empty"],
        "train_tokens": int(n.sum()),
        "train_length": {"mean": float(n.mean()), "percentiles": np.percentile(n, np.arange(101)).tolist()},
    }


def _str_keys(obj: Any) -> Any:
    """``obj`` with every mapping key as text (YAML allows ``class_names: {1: World, "2": Sports}``)."""
    if isinstance(obj, dict):
        return {str(k): _str_keys(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_str_keys(v) for v in obj]
    return obj


def _cache_key(data: dict, paths: dict[str, Path], seed: int) -> str:
    files = {r: [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for r, p in paths.items()}
    blob = json.dumps(_str_keys({"v": CACHE_VERSION, "files": files, "data": data, "seed": seed}), sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def data_summary(name: str, data: dict, seed: int = 0, cache_dir: str | Path | None = None) -> dict:
    """:func:`summarise`, cached in ``cache_dir/<name>.json`` by the files' size and modification time, the
    data settings and the seed (so a dry run does not re-read an unchanged table)."""
    paths = table_paths(name, data)
    key = _cache_key(data, paths, seed)
    cache = Path(cache_dir) / f"{name}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            hit = json.loads(cache.read_text())
            if hit.get("key") == key:
                return hit["summary"]
        except (OSError, ValueError):
            pass
    summary = summarise(name, data, paths, seed)
    if cache is not None:
        try:
            write_json(cache, {"key": key, "summary": summary})
        except OSError:  # a read-only working directory only costs the cache
            pass
    return summary


def resolve_section(name: str, section: dict, seed: int = 0, cache_dir: str | Path | None = None) -> dict:
    """Check a custom dataset before any job and return its section with every ``auto`` setting resolved
    from the data (models with their role defaults, embedding ``dim``/``min_count``). Raises
    :class:`ConfigError` naming the problem; logs the derived values and the documents dropped."""
    if name in RESERVED_NAMES:
        raise ConfigError(f"dataset name {name!r} is reserved (results/{name}/ holds the cross-dataset tables); "
                          f"choose another name")
    out = copy.deepcopy(dict(section))
    data = out.setdefault("data", {})
    if data.get("class_names"):  # YAML allows {1: World, "2": Sports}; JSON (params, config hash) wants text
        data["class_names"] = {str(k).strip(): v for k, v in data["class_names"].items()}
    summary = data_summary(name, data, seed, cache_dir)
    for split, n in summary["dropped_empty"].items():
        if n:
            log.warning("%s: %d %s document(s) are empty after cleaning and are dropped", name, n, split)
    out["models"], notes = resolve_models(name, out.get("models") or {"teacher": {}, "student": {}}, summary)
    check_val_splits(name, out["models"], summary)
    out["embedding"], more = resolve_embedding(name, out.get("embedding") or {}, summary)
    for note in notes + more:
        log.info("%s", note)
    log.info("%s: %d classes, %d train / %d test documents", name, summary["n_classes"],
             summary["n_docs"]["train"], summary["n_docs"]["test"])
    return out


__all__ = ["KIND", "ROLE_DEFAULTS", "auto_channels", "auto_embedding_epochs", "auto_max_len", "check_frames",
           "check_val_splits", "clean_text", "custom_manifest", "data_summary", "detect_format", "load_custom",
           "normalise_labels", "read_table", "resolve_section", "table_paths", "val_split_problem"]
