"""Turn resolved raw files into one tidy parquet file per split plus ``stats.json``.

Columns: ``id`` (str), ``text`` (cleaned str), ``tokens`` (list of str), ``n_tokens`` (int),
``label`` (int, 0-based), ``label_name`` (str). Documents with no token after cleaning are dropped and
counted (``stats.json: dropped_empty``). Subsets (``max_train_docs``, ``max_test_docs``) are stratified
by label and seeded (:mod:`.split`). The built-in text datasets and custom tables (:mod:`.custom`, manifest kind
``custom``) go through the same :func:`build_text_frames`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import atomic_path, write_json
from . import agnews, mnist, ng20
from .custom.load import KIND as CUSTOM
from .custom.load import check_frames, load_custom
from .split import split_stratified, stratified_subset
from .text import TokenizerConfig, clean_agnews, clean_newsgroup, tokenize

log = logging.getLogger(__name__)

NOT_COMPARABLE_NOTE = (
    "AG News was re-split from the official 7,600-row test file (the 120,000-row train.csv was not "
    "available): results are NOT comparable with the published figures."
)


def _frame(ids, texts, labels, class_names, tok: TokenizerConfig, tokens=None,
           extra_cols: dict | None = None, where: str = "") -> tuple[pd.DataFrame, int]:
    if tokens is None:
        tokens = [tokenize(t, tok) for t in texts]
    df = pd.DataFrame({
        "id": pd.Series(ids, dtype="string"),
        "text": pd.Series(texts, dtype="string"),
        "tokens": tokens,
        "n_tokens": np.array([len(t) for t in tokens], dtype=np.int64),
        "label": np.asarray(labels, dtype=np.int64),
    })
    df["label_name"] = pd.Series([class_names[i] for i in df["label"]], dtype="string")
    for name, values in (extra_cols or {}).items():
        df[name] = values
    empty = int((df["n_tokens"] == 0).sum())
    if empty:
        shown = df.loc[df["n_tokens"] == 0, "id"].head(5).tolist()
        log.warning("%sdropping %d of %d documents that are empty after cleaning (ids %s%s)",
                    f"{where}: " if where else "", empty, len(df), ", ".join(shown), " ..." if empty > 5 else "")
        df = df[df["n_tokens"] > 0].reset_index(drop=True)
    return df, empty


def load_ng20(manifest: dict, cfg: dict) -> tuple[dict[str, tuple], list[str]]:
    out = {}
    index = {g: i for i, g in enumerate(ng20.GROUPS)}
    for split, folder in (("train", "20news-bydate-train"), ("test", "20news-bydate-test")):
        ids, texts, labels = [], [], []
        for doc_id, group, text in ng20.iter_split(manifest["items"][folder], folder):
            ids.append(doc_id)
            texts.append(clean_newsgroup(
                text, remove_headers=cfg.get("remove_headers", True), keep_subject=cfg.get("keep_subject", True),
                remove_quotes=cfg.get("remove_quotes", True), remove_footers=cfg.get("remove_footers", True)))
            labels.append(index[group])
        out[split] = (ids, texts, np.array(labels))
    return out, list(ng20.GROUPS)


def load_agnews(manifest: dict, cfg: dict, seed: int) -> tuple[dict[str, tuple], list[str], dict]:
    mode = cfg.get("resplit_from_test", "auto")
    have_train = "train.csv" in manifest["items"]
    if mode is False and not have_train:
        raise ConfigError(
            "AG News train.csv is not available and agnews.data.resplit_from_test is false. Put the "
            "official train.csv (120,000 rows) into the raw folder or the mirror, or set "
            "resplit_from_test: auto to re-split the official test file (results not comparable).")
    resplit = mode is True or (mode == "auto" and not have_train)
    strip = cfg.get("strip_tags", True)

    def rows_to(rows, prefix):
        ids = [f"{prefix}{i}" for i in range(len(rows))]
        texts = [clean_agnews(f"{title}. {desc}", strip_tags=strip) for _l, title, desc in rows]
        return ids, texts, np.array([r[0] for r in rows])

    test_rows = agnews.read_csv(manifest["items"]["test.csv"]["path"])
    info = {"resplit_from_test": resplit, "comparable_with_paper": not resplit}
    if resplit:
        ids, texts, labels = rows_to(test_rows, "test-")
        tr, te = split_stratified(labels, cfg.get("resplit_test_fraction", 0.2), seed)
        pick = lambda idx: ([ids[i] for i in idx], [texts[i] for i in idx], labels[idx])  # noqa: E731
        out = {"train": pick(tr), "test": pick(te)}
        info["note"] = NOT_COMPARABLE_NOTE
        log.warning(NOT_COMPARABLE_NOTE)
    else:
        out = {"train": rows_to(agnews.read_csv(manifest["items"]["train.csv"]["path"]), "train-"),
               "test": rows_to(test_rows, "test-")}
    return out, list(agnews.CLASSES), info


PLANTED_KEYS = ("n_train", "n_test", "n_classes", "background_size", "keywords_per_class", "keywords_per_doc",
                "n_distractors", "distractor_rate", "min_len", "max_len", "zipf_a", "cross_rate")


def load_planted(cfg: dict, seed: int) -> tuple[dict[str, tuple], list[str], dict]:
    """The planted-keyword corpus (:mod:`xaipipe.data.planted`); column ``planted`` = ground truth."""
    from .planted import generate

    corpus_seed = seed if cfg.get("seed") is None else int(cfg["seed"])  # a corpus of its own, same pipeline seed
    corpus = generate(seed=corpus_seed, **{k: cfg[k] for k in PLANTED_KEYS if k in cfg})
    out = {}
    for split in ("train", "test"):
        d = corpus[split]
        texts = [" ".join(t) for t in d["tokens"]]
        out[split] = (d["id"], texts, np.array(d["label"]), d["tokens"], {"planted": d["planted"]})
    info = {"generated": True, "keywords": corpus["keywords"], "distractors": corpus["distractors"]}
    return out, corpus["classes"], info


def length_histogram(n_tokens: np.ndarray, bins: int = 40) -> dict:
    n_tokens = np.asarray(n_tokens)
    hi = max(int(np.percentile(n_tokens, 99)), 1) if len(n_tokens) else 1
    counts, edges = np.histogram(np.clip(n_tokens, 0, hi), bins=bins, range=(0, hi))
    return {"counts": counts.tolist(), "edges": edges.tolist(), "clipped_at": hi}


def text_stats(frames: dict[str, pd.DataFrame], class_names: list[str], extra: dict) -> dict:
    stats = {"classes": class_names, "n_classes": len(class_names), **extra}
    for split, df in frames.items():
        n = df["n_tokens"].to_numpy()
        stats[split] = {
            "n_docs": int(len(df)),
            "docs_per_class": {class_names[i]: int(c) for i, c in
                               zip(*np.unique(df["label"], return_counts=True))},
            "length": {"mean": float(n.mean()), "median": float(np.median(n)),
                       "p90": float(np.percentile(n, 90)), "max": int(n.max()), "min": int(n.min())},
            "length_histogram": length_histogram(n),
        }
    return stats


def build_text_frames(dataset: str, manifest: dict, cfg: dict, seed: int
                      ) -> tuple[dict[str, pd.DataFrame], list[str], dict]:
    """Load, clean, tokenise and subset a text dataset in memory: ``({split: frame}, class names, extra
    stats)``. Custom datasets (``manifest["kind"] == "custom"``) are read by :mod:`.custom` and checked
    again after cleaning."""
    tok = TokenizerConfig.from_dict(cfg)
    extra: dict = {"dataset": dataset, "seed": seed}
    custom = manifest.get("kind") == CUSTOM
    if custom:
        paths = {role: item["path"] for role, item in manifest["items"].items()}
        raw, classes, info = load_custom(dataset, cfg, paths, seed)
        extra.update(info)
        extra["files"] = {role: {k: item[k] for k in ("path", "sha256") if k in item}
                          for role, item in manifest["items"].items()}
    elif dataset == "ng20":
        raw, classes = load_ng20(manifest, cfg)
    elif dataset == "agnews":
        raw, classes, info = load_agnews(manifest, cfg, seed)
        extra.update(info)
    elif dataset == "planted":
        raw, classes, info = load_planted(cfg, seed)
        extra.update(info)
    else:
        raise ConfigError(f"unknown text dataset {dataset!r}")
    frames, dropped = {}, {}
    for split in ("train", "test"):
        frames[split], dropped[split] = _frame(*raw[split][:3], classes, tok, *raw[split][3:],
                                               where=f"{dataset} {split}")
    if custom:
        check_frames(dataset, frames, classes)
    for split in ("train", "test"):
        limit = cfg.get(f"max_{split}_docs") or None
        keep = stratified_subset(frames[split]["label"].to_numpy(), limit, seed + (0 if split == "train" else 1))
        frames[split] = frames[split].iloc[keep].reset_index(drop=True)
    extra["dropped_empty"] = dropped
    extra["subset"] = {s: cfg.get(f"max_{s}_docs") or None for s in ("train", "test")}
    return frames, classes, extra


def prepare_text(dataset: str, manifest: dict, cfg: dict, seed: int, out_train: str, out_test: str,
                 out_stats: str) -> dict:
    """Load, clean, tokenise, subset and write a text dataset (built-in or custom). Returns the stats."""
    frames, classes, extra = build_text_frames(dataset, manifest, cfg, seed)
    stats = text_stats(frames, classes, extra)
    for df, path in ((frames["train"], out_train), (frames["test"], out_test)):
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
    write_json(out_stats, stats)
    log.info("%s: %d train / %d test documents", dataset, len(frames["train"]), len(frames["test"]))
    return stats


def prepare_mnist(manifest: dict, cfg: dict, seed: int, out_train: str, out_test: str, out_stats: str) -> dict:
    """Decode the IDX files, subset (stratified) and write ``.npz`` files with ``x`` (uint8 N x 28 x 28)
    and ``y`` (int64)."""
    items = manifest["items"]
    splits = {
        "train": (mnist.read_idx(items["train-images-idx3-ubyte.gz"]["path"]),
                  mnist.read_idx(items["train-labels-idx1-ubyte.gz"]["path"])),
        "test": (mnist.read_idx(items["t10k-images-idx3-ubyte.gz"]["path"]),
                 mnist.read_idx(items["t10k-labels-idx1-ubyte.gz"]["path"])),
    }
    stats: dict = {"dataset": "mnist", "classes": [str(i) for i in range(10)], "n_classes": 10, "seed": seed}
    for (split, (x, y)), path in zip(splits.items(), (out_train, out_test)):
        if len(x) != len(y):
            raise ConfigError(f"MNIST {split}: {len(x)} images but {len(y)} labels")
        keep = stratified_subset(y, cfg.get(f"max_{split}_docs") or None, seed + (0 if split == "train" else 1))
        x, y = x[keep], y[keep].astype(np.int64)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, x=x, y=y)
        stats[split] = {"n_docs": int(len(y)),
                        "docs_per_class": {str(c): int(n) for c, n in zip(*np.unique(y, return_counts=True))}}
    write_json(out_stats, stats)
    return stats


def prepare(dataset: str, manifest: dict, cfg: dict, seed: int, out_train: str, out_test: str,
            out_stats: str) -> dict:
    if dataset == "mnist":
        return prepare_mnist(manifest, cfg, seed, out_train, out_test, out_stats)
    return prepare_text(dataset, manifest, cfg, seed, out_train, out_test, out_stats)


def plot_length_histogram(stats: dict, path: str | Path) -> None:
    """Figure 3 of the report: histogram of document lengths (tokens) per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for split in ("train", "test"):
        h = stats[split]["length_histogram"]
        edges = np.asarray(h["edges"])
        ax.stairs(h["counts"], edges, label=f"{split} (n={stats[split]['n_docs']:,}, mean "
                                              f"{stats[split]['length']['mean']:.0f})", fill=False)
    ax.set_xlabel(f"document length in tokens (clipped at the 99th percentile, {h['clipped_at']})")
    ax.set_ylabel("documents")
    ax.set_title(f"{stats.get('dataset', '')}: document lengths")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
