"""Label values of a custom table: integers or strings, one type over all rows (integers sort numerically;
``data.class_names`` gives them display names)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .read import _missing

_INT_RE = re.compile(r"^[+-]?\d+$")


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


__all__ = ["normalise_labels"]
