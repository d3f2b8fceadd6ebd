"""AG News (Zhang et al. 2015 CSV): class index (1-4), title, description; no header."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import XaipipeError

CLASSES = ("World", "Sports", "Business", "Sci/Tech")


def read_csv(path: str | Path) -> list[tuple[int, str, str]]:
    """Return ``(label 0-3, title, description)`` rows; malformed rows raise naming the line."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if len(row) != 3:
                raise XaipipeError(f"{path}:{lineno}: expected 3 fields (class, title, description), got {len(row)}")
            try:
                label = int(row[0]) - 1
            except ValueError:
                raise XaipipeError(f"{path}:{lineno}: class index {row[0]!r} is not an integer") from None
            if not 0 <= label < len(CLASSES):
                raise XaipipeError(f"{path}:{lineno}: class index {row[0]} outside 1..{len(CLASSES)}")
            rows.append((label, row[1], row[2]))
    return rows
