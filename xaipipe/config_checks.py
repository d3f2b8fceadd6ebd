"""Checks of the merged config that the JSON schema cannot phrase well, run by the Snakefile before
``validate`` (torch-free, milliseconds).

The schema takes every top-level key it does not know for a custom dataset section (``kind: custom``), so
a typo such as ``sedd: 3`` or ``resourcess: {...}`` used to be answered with a dump of the custom-dataset
schema. :func:`check_top_level_keys` names the key and the closest known one instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .method_params import suggest

__all__ = ["check_top_level_keys", "schema_top_level_keys"]


def schema_top_level_keys(schema_path: str | Path) -> list[str]:
    """The top-level keys the schema declares (settings, built-in datasets, stage sections)."""
    import yaml

    return list((yaml.safe_load(Path(schema_path).read_text()) or {}).get("properties", {}))


def check_top_level_keys(config: Mapping[str, Any], known: list[str]) -> None:
    """A top-level key is a declared setting or section, a dataset listed under ``datasets`` (a custom
    dataset: the schema then checks its section) or a section with ``kind`` (a custom dataset not run
    now). Anything else raises a one-line :class:`ConfigError` naming the key and the closest known key."""
    datasets = config.get("datasets")
    listed = [d for d in datasets if isinstance(d, str)] if isinstance(datasets, list) else []
    for key, value in config.items():
        if key in known or key in listed:
            continue
        if isinstance(value, Mapping) and "kind" in value:
            continue
        hint = suggest(key, list(known) + listed)
        raise ConfigError(f"config: unknown top-level key {key!r}{hint}; known keys: README \"Configuration\" "
                          f"(a section for your own table needs 'kind: custom', see config/custom_example.yaml)")
