"""The config schemas as the one place defaults are declared: library code that fills the keys a caller
left out reads them here instead of keeping a copy (``config/schema.yaml`` for the main config,
``config/schema/<section>.yaml`` for each stage section). In a workflow run Snakemake's validation has
filled every default already; these are for library callers that pass only what they change.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


@lru_cache(maxsize=None)
def _load(section: str | None) -> dict:
    path = CONFIG_DIR / "schema.yaml" if section is None else CONFIG_DIR / "schema" / f"{section}.yaml"
    return yaml.safe_load(path.read_text())


def node(section: str | None, *path: str) -> dict:
    """The schema of ``section`` (``None``: the main config) followed down ``path``: property names,
    ``"*"`` for ``additionalProperties`` (the schema of every entry of a mapping), or ``"$key"`` for a key
    of the schema itself (``"$definitions", "$explainers"``)."""
    n = _load(section)
    for p in path:
        n = n["additionalProperties"] if p == "*" else n[p[1:]] if p.startswith("$") else n["properties"][p]
    return n


def defaults(section: str | None, *path: str, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``{key: default}`` of the properties at ``path`` that declare one (only ``keys`` when given; a key
    without a default there is an error, not a silent gap). Fresh copies: callers may change them."""
    props = node(section, *path).get("properties", {})
    names = [k for k in props if "default" in props[k]] if keys is None else list(keys)
    missing = [k for k in names if "default" not in props.get(k, {})]
    if missing:
        where = "/".join((section or "schema", *path))
        raise KeyError(f"{where}: no default declared for {', '.join(missing)}")
    return {k: copy.deepcopy(props[k]["default"]) for k in names}


__all__ = ["CONFIG_DIR", "defaults", "node"]
