"""A custom dataset before any job: the manifest of its files (fetch_data, :func:`custom_manifest`) and the
check run by the Snakefile while it parses the config (:func:`resolve_section`): build the prepared splits in
memory (every check of :func:`.load.load_custom` and :func:`.load.check_frames`), summarise them
(:func:`summarise`; cached by file size, modification time and settings, :func:`data_summary`) and resolve
every ``auto`` setting from the summary (:mod:`.settings`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...io import write_json
from .load import KIND
from .read import table_paths
from .settings import check_val_splits, resolve_embedding, resolve_models

# the package's one logger, named as before the split: rules/common.smk prints its messages while the
# Snakefile parses, the tests listen to it, and log lines name it
log = logging.getLogger("xaipipe.data.custom")

RESERVED_NAMES = ("summary",)  # results/summary/ holds the cross-dataset tables
CACHE_VERSION = 3  # bump when reading, cleaning, the summary or the derived settings change


# --- the manifest (fetch_data) ------------------------------------------------------------------------
def custom_manifest(name: str, paths: dict[str, str | Path]) -> dict:
    """Manifest of a custom dataset: each user file with its sha256 (no published checksum to check)."""
    from ...io import file_digest

    items = {}
    for role, p in paths.items():
        p = Path(p)
        items[role] = {"path": str(p.resolve()), "source": "user", "sha256": file_digest(p),
                       "size": p.stat().st_size}
    return {"dataset": name, "kind": KIND, "items": items, "missing_optional": [], "verified": False,
            "note": "user-supplied files: sha256 recorded, no published checksum to verify against"}


# --- the check before any job -------------------------------------------------------------------------
def summarise(name: str, data: dict, paths: dict[str, Path], seed: int) -> dict:
    """Build the prepared splits in memory (every check of :func:`load_custom` and :func:`check_frames`)
    and summarise what the derived settings need."""
    # here, not at module level: prepare imports .load, which runs this package's __init__, which
    # imports this module (a module-level import of prepare would be an import cycle)
    from ..prepare import build_text_frames

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


__all__ = ["CACHE_VERSION", "RESERVED_NAMES", "custom_manifest", "data_summary", "resolve_section", "summarise"]
