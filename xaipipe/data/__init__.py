"""Data stage: raw sources (:mod:`.sources`, :mod:`.catalog`), readers, cleaning and preparation."""

from __future__ import annotations

from .catalog import CATALOG
from .sources import resolve

GENERATED = ("planted",)


def fetch(dataset: str, raw_dir: str, mirror: str | None = None, offline: bool = False,
          optional: set[str] | frozenset[str] = frozenset(), verify: bool = True) -> dict:
    """Manifest of a dataset's raw files (generated datasets need none)."""
    if dataset in GENERATED:
        return {"dataset": dataset, "items": {}, "missing_optional": [], "generated": True, "verified": True}
    return resolve(CATALOG[dataset], raw_dir, mirror=mirror, offline=offline, optional=optional, verify=verify)


__all__ = ["CATALOG", "GENERATED", "fetch", "resolve"]
