"""Data stage: raw sources (:mod:`.sources`, :mod:`.catalog`), readers, cleaning and preparation; the
user's own labelled tables as custom datasets (:mod:`.custom`)."""

from __future__ import annotations

from pathlib import Path

from .catalog import CATALOG
from .sources import resolve

GENERATED = ("planted",)


def fetch(dataset: str, raw_dir: str, mirror: str | None = None, offline: bool = False,
          optional: set[str] | frozenset[str] = frozenset(), verify: bool = True,
          tables: dict[str, str | Path] | None = None) -> dict:
    """Manifest of a dataset's raw files (generated datasets need none). ``tables`` (role -> file) makes it
    a custom dataset's manifest: the user's files with their sha256 (:func:`.custom.custom_manifest`)."""
    if tables:
        from .custom import custom_manifest  # pandas only when needed

        return custom_manifest(dataset, tables)
    if dataset in GENERATED:
        return {"dataset": dataset, "items": {}, "missing_optional": [], "generated": True, "verified": True}
    return resolve(CATALOG[dataset], raw_dir, mirror=mirror, offline=offline, optional=optional, verify=verify)


__all__ = ["CATALOG", "GENERATED", "fetch", "resolve"]
