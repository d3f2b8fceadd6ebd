"""Reading the user's table(s) of a custom dataset, and cleaning their text.

Files: :func:`table_paths` (one file per split, ``data.files: {train, test}``, or one file, ``data.path``);
:func:`read_table` reads CSV, TSV, JSON Lines or parquet (``format: auto`` picks it from the extension,
``.gz``/``.bz2``/``.xz`` compression included). Each problem is a :class:`~xaipipe.errors.ConfigError` that
names the dataset, the file, the row and the fix: a file that is missing or does not parse in its format; text
that is not valid in ``encoding`` (the message names the line and data row).

Text: the ``text_columns`` of a row joined by ``text_separator`` (several fields, like AG News' title and
description), cleaned language-agnostically (:func:`clean_text`: Unicode normal form, optional HTML and URL
removal) and tokenised by the shared :func:`xaipipe.data.text.tokenize` (runs of letters of any script, or
digits), so a word means the same at training and explanation time.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import html
import io
import json
import lzma
import math
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import ConfigError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}

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


__all__ = ["FORMATS", "clean_text", "detect_format", "read_table", "table_paths"]
