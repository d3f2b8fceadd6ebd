"""Custom datasets (xaipipe.data.custom): the user's own labelled CSV/TSV/JSONL/parquet tables as datasets of
the pipeline -- reading, splitting, labels, every validation error and its message, the settings derived
from the data, and an end-to-end run of the Snakefile on a CSV and a parquet file written here."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from xaipipe.data import custom, fetch
from xaipipe.data.custom import (
    auto_channels,
    auto_max_len,
    clean_text,
    data_summary,
    load_custom,
    read_table,
    resolve_section,
    table_inputs,
    table_paths,
)
from xaipipe.data.prepare import prepare_text
from xaipipe.data.split import split_stratified
from xaipipe.data.text import tokenize
from xaipipe.errors import ConfigError
from test_workflow import job_counts, smk as _smk

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_COLUMNS = ["id", "text", "tokens", "n_tokens", "label", "label_name"]
KEYWORDS = {"pos": ["great", "love", "excellent", "happy"], "neg": ["awful", "broken", "refund", "hate"],
            "neu": ["okay", "average", "fine", "decent"]}
FILLER = "the of and to in is that it for on with as was be this are by at from".split()


def review_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows ``id, title, body, label`` cycling through three classes, with class keywords."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = ("pos", "neg", "neu")[i % 3]
        words = [str(rng.choice(KEYWORDS[label])) if rng.random() < 0.3 else str(rng.choice(FILLER))
                 for _ in range(int(rng.integers(6, 20)))]
        rows.append({"id": f"r{i}", "title": " ".join(words[:2]).title(), "body": " ".join(words), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def data_cfg(**kw) -> dict:
    return {"text_columns": ["title", "body"], "label_column": "label", **kw}


@pytest.fixture
def split_files(tmp_path):
    rows = review_rows(30)
    tr = write_csv(tmp_path / "train.csv", rows[:24])
    te = write_csv(tmp_path / "test.csv", rows[24:])
    return {"train": tr, "test": te}


def errmsg(name: str, data: dict, paths: dict, seed: int = 0) -> str:
    with pytest.raises(ConfigError) as exc:
        load_custom(name, data, paths, seed)
    return str(exc.value)


# --- reading, splitting, labels -------------------------------------------------------------------------

def test_files_per_split_join_text_columns_and_map_labels(split_files):
    out, names, info = load_custom("rev", data_cfg(), split_files)
    rows = review_rows(30)
    assert names == ["neg", "neu", "pos"] and info["label_type"] == "str"
    ids, texts, labels = out["train"]
    assert ids[:2] == ["train-1", "train-2"] and out["test"][0][0] == "test-1"
    assert texts[0] == f"{rows[0]['title']}\n{rows[0]['body']}"
    assert labels.tolist() == [names.index(r["label"]) for r in rows[:24]]
    assert info["rows"] == {"train": 24, "test": 6} and info["split"] == "files"


def test_integer_labels_sort_numerically_and_take_display_names(tmp_path):
    rows = [{"title": "a", "body": f"w{i} word", "label": lab} for i, lab in enumerate([10, 2, 1, 2, 10, 1])]
    p = write_csv(tmp_path / "t.csv", rows)
    data = data_cfg(class_names={10: "ten", "1": "one"})
    out, names, info = load_custom("n", data, {"train": p, "test": p})
    assert info["label_values"] == [1, 2, 10] and info["label_type"] == "int"
    assert names == ["one", "2", "ten"]
    assert out["train"][2].tolist() == [2, 1, 0, 1, 2, 0]


def test_mixed_labels_become_strings_and_explicit_classes_set_the_order(tmp_path):
    rows = [{"title": "a", "body": "word", "label": lab} for lab in ["1", "x", "1", "x"]]
    p = write_csv(tmp_path / "t.csv", rows)
    out, names, _ = load_custom("m", data_cfg(classes=["x", 1]), {"train": p, "test": p})
    assert names == ["x", "1"] and out["train"][2].tolist() == [1, 0, 1, 0]


def test_one_parquet_with_split_column_ids_and_ignored_rows(tmp_path, caplog):
    rows = review_rows(20)
    df = pd.DataFrame(rows).assign(part=["train"] * 12 + ["dev"] * 3 + ["test"] * 5)
    df.to_parquet(tmp_path / "all.parquet", index=False)
    data = data_cfg(path=str(tmp_path / "all.parquet"), split_column="part", id_column="id")
    with caplog.at_level(logging.WARNING, logger="xaipipe.data.custom"):
        out, _names, info = load_custom("pq", data, {"table": tmp_path / "all.parquet"})
    assert out["train"][0] == [f"r{i}" for i in range(12)] and out["test"][0] == [f"r{i}" for i in range(15, 20)]
    assert "ignoring 3 rows" in caplog.text and "'dev' (3)" in caplog.text
    data["split_values"] = {"train": ["train", "dev"], "test": "test"}
    out, _names, _info = load_custom("pq", data, {"table": tmp_path / "all.parquet"})
    assert len(out["train"][0]) == 15


def test_integer_split_values_match_whatever_the_column_type(tmp_path):
    rows = review_rows(10)
    df = pd.DataFrame(rows).assign(fold=[0.0, 1.0] * 5)  # a float column, as parquet keeps it
    df.to_parquet(tmp_path / "f.parquet")
    data = data_cfg(path="f", split_column="fold", split_values={"train": [0], "test": "1"})
    out, _n, _i = load_custom("f", data, {"table": tmp_path / "f.parquet"})
    assert out["train"][0] == [f"table-{i}" for i in (1, 3, 5, 7, 9)] and len(out["test"][0]) == 5


def test_test_fraction_is_the_stratified_seeded_split(tmp_path):
    rows = review_rows(40)
    p = write_csv(tmp_path / "all.csv", rows)
    out, names, info = load_custom("f", data_cfg(path=str(p), test_fraction=0.25), {"table": p}, seed=3)
    y = np.array([r["label"] for r in rows])
    tr, te = split_stratified(y, 0.25, 3)
    assert out["train"][0] == [f"table-{i + 1}" for i in tr] and out["test"][0] == [f"table-{i + 1}" for i in te]
    assert info["split"] == "test_fraction"


def test_headerless_tsv_jsonl_and_compressed_files(tmp_path):
    import gzip

    (tmp_path / "t.tsv").write_text("1\tHello there\tWorld news\n2\tGoal!\tSports news\n")
    df = read_table(tmp_path / "t.tsv", {"column_names": ["label", "title", "body"]})
    assert df["title"].tolist() == ["Hello there", "Goal!"] and df["_row"].tolist() == [1, 2]
    lines = [json.dumps({"title": "a", "body": "b c", "label": 1}), "", json.dumps({"title": "d", "label": 2})]
    with gzip.open(tmp_path / "t.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    df = read_table(tmp_path / "t.jsonl.gz")
    assert df["title"].tolist() == ["a", "d"] and pd.isna(df["body"].iloc[1])


def test_bom_list_columns_and_missing_text_fields(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufefftitle,body,label\nHi,,a\n,there,b\n".encode("utf-8"))
    out, _names, _info = load_custom("b", data_cfg(), {"train": p, "test": p})
    assert out["train"][1] == ["Hi", "there"]
    pd.DataFrame({"title": ["x"], "body": [["pre", "tokenised"]], "label": ["a"]}).to_parquet(tmp_path / "l.parquet")
    df = read_table(tmp_path / "l.parquet")
    assert custom._as_text(df["body"][0], "utf-8", 1, "body", "l", "d") == "pre tokenised"


def test_clean_text_is_language_agnostic():
    assert clean_text("ＡＢＣ ﬁne", normalize="NFKC") == "ABC fine"
    assert clean_text("ＡＢＣ", normalize="NFC") == "ＡＢＣ"
    assert clean_text("Tom &amp; <b>Jerry</b>", strip_html=True) == "Tom & Jerry"
    assert clean_text("see https://x.org/a?b=1 and www.y.com now", strip_urls=True) == "see and now"
    assert clean_text("a\r\nb \t c") == "a\nb c"
    assert tokenize(clean_text("Ελληνικά και русский текст")) == ["ελληνικά", "και", "русский", "текст"]


# --- validation errors (each message checked) -----------------------------------------------------------

def test_missing_file_names_the_key_and_the_path(tmp_path, split_files):
    files = {"train": str(split_files["train"]), "test": str(tmp_path / "nope.csv")}
    with pytest.raises(ConfigError, match=r"rev\.data\.files\.test: file .*nope\.csv does not exist"):
        table_paths("rev", data_cfg(files=files))


def test_layout_must_be_files_or_path_with_a_split(tmp_path, split_files):
    with pytest.raises(ConfigError, match="either 'files"):
        table_paths("rev", data_cfg())
    with pytest.raises(ConfigError, match="not both"):
        table_paths("rev", data_cfg(files={"train": "a", "test": "b"}, path="c"))
    with pytest.raises(ConfigError, match="split_column.*test_fraction"):
        table_paths("rev", data_cfg(path=str(split_files["train"])))
    with pytest.raises(ConfigError, match="not both"):
        table_paths("rev", data_cfg(path=str(split_files["train"]), split_column="s", test_fraction=0.2))
    with pytest.raises(ConfigError, match="leave them out"):
        table_paths("rev", data_cfg(files={k: str(v) for k, v in split_files.items()}, split_column="s"))


def test_table_inputs_are_the_custom_tables_and_nothing_for_builtin_datasets(tmp_path, split_files):
    files = {k: str(v) for k, v in split_files.items()}
    assert table_inputs("rev", {"kind": "custom", "data": data_cfg(files=files)}) == files
    one = {"kind": "custom", "data": data_cfg(path=files["train"], test_fraction=0.2)}
    assert table_inputs("rev", one) == {"table": files["train"]}
    assert table_inputs("ng20", {"models": {}}) == {} and table_inputs("ng20", None) == {}
    with pytest.raises(ConfigError, match="either 'files"):
        table_inputs("rev", {"kind": "custom", "data": data_cfg()})


def test_csv_that_does_not_parse(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("title,body,label\na,b,c\nd,e,f,g\n")
    msg = errmsg("bad", data_cfg(), {"train": p, "test": p})
    assert "cannot parse" in msg and str(p) in msg and "line 3" in msg and "delimiter" in msg


def test_jsonl_that_does_not_parse_names_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"title": "a", "body": "b", "label": 1}\n\n{"title": "c", "body": \n')
    msg = errmsg("j", data_cfg(), {"train": p, "test": p})
    assert "line 3 (data row 2) is not valid JSON" in msg
    p.write_text('{"title": "a", "body": "b", "label": 1}\n[1, 2]\n')
    assert "line 2 (data row 2) is a JSON list" in errmsg("j", data_cfg(), {"train": p, "test": p})


def test_file_that_is_not_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"this is not parquet")
    assert f"cannot read {p} as parquet" in errmsg("pq", data_cfg(), {"train": p, "test": p})


def test_unknown_extension_asks_for_the_format(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("title,body,label\n")
    assert "set data.format" in errmsg("t", data_cfg(), {"train": p, "test": p})


def test_missing_columns_are_named_with_the_columns_that_exist(tmp_path, split_files):
    msg = errmsg("rev", data_cfg(text_columns=["title", "text"], id_column="key"), split_files)
    assert "no column 'text' (rev.data.text_columns[1]), 'key' (rev.data.id_column)" in msg
    assert "['id', 'title', 'body', 'label']" in msg
    semi = tmp_path / "semi.csv"
    semi.write_text("title;body;label\na;b;c\n")
    assert "is the delimiter right?" in errmsg("s", data_cfg(), {"train": semi, "test": semi})


def test_encoding_error_names_the_line_and_the_data_row(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes('title,body,label\nx,"first line\nsecond line",a\ny,caf\xe9 au lait,b\n'.encode("latin-1"))
    msg = errmsg("enc", data_cfg(), {"train": p, "test": p})
    assert "is not valid utf-8" in msg and "line 4, data row 2" in msg and "e9" in msg
    assert "enc.data.encoding" in msg
    out, _n, _i = load_custom("enc", data_cfg(encoding="latin-1"), {"train": p, "test": p})
    assert out["train"][1][1] == "y\ncafé au lait"


def test_encoding_error_in_jsonl_and_in_a_parquet_bytes_column(tmp_path):
    p = tmp_path / "l.jsonl"
    p.write_bytes(b'{"title": "a", "body": "b", "label": 1}\n{"title": "\xff", "body": "b", "label": 2}\n')
    assert "line 2, data row 2" in errmsg("e", data_cfg(), {"train": p, "test": p})
    q = tmp_path / "b.parquet"
    pd.DataFrame({"title": [b"ok", b"\xff\xfe"], "body": ["x", "y"], "label": [1, 2]}).to_parquet(q)
    msg = errmsg("e", data_cfg(), {"train": q, "test": q})
    assert "row 2, column 'title' is not valid utf-8" in msg


def test_fewer_than_two_classes(tmp_path):
    p = write_csv(tmp_path / "one.csv", [{"title": "a", "body": "b", "label": "x"}] * 3)
    assert "only 1 class (['x'])" in errmsg("one", data_cfg(), {"train": p, "test": p})


def test_empty_split(tmp_path, split_files):
    empty = tmp_path / "empty.csv"
    empty.write_text("title,body,label\n")
    msg = errmsg("e", data_cfg(), {"train": split_files["train"], "test": empty})
    assert "the test split is empty" in msg and "empty.csv" in msg
    rows = [dict(r, part="train") for r in review_rows(6)]
    p = write_csv(tmp_path / "all.csv", rows)
    msg = errmsg("e", data_cfg(path=str(p), split_column="part"), {"table": p})
    assert "the test split is empty" in msg and "values found: ['train']" in msg


def test_test_labels_unseen_in_training_error_or_drop(tmp_path, split_files, caplog):
    rows = review_rows(6) + [{"id": "z", "title": "x", "body": "y", "label": "spam"}]
    te = write_csv(tmp_path / "test2.csv", rows)
    paths = {"train": split_files["train"], "test": te}
    msg = errmsg("u", data_cfg(), paths)
    assert "test label(s) ['spam'] never occur in the training split (1 rows of" in msg and "test2.csv: 7)" in msg
    assert "unseen_test_labels: drop" in msg
    with caplog.at_level(logging.WARNING, logger="xaipipe.data.custom"):
        out, _n, info = load_custom("u", data_cfg(unseen_test_labels="drop"), paths)
    assert len(out["test"][0]) == 6 and info["dropped_unseen_test_labels"] == 1
    assert "dropping 1 test rows" in caplog.text


def test_missing_labels_name_the_rows(tmp_path):
    rows = review_rows(6)
    rows[2]["label"] = ""
    rows[4]["label"] = " "
    p = write_csv(tmp_path / "m.csv", rows)
    assert "2 rows of" in (msg := errmsg("m", data_cfg(), {"train": p, "test": p})) and "(rows 3, 5)" in msg


def test_duplicate_ids(tmp_path):
    rows = review_rows(6)
    rows[4]["id"] = "r1"
    p = write_csv(tmp_path / "d.csv", rows)
    q = write_csv(tmp_path / "e.csv", review_rows(3))
    msg = errmsg("d", data_cfg(id_column="id"), {"train": p, "test": q})
    assert "id 'r1' occurs twice" in msg and "row 2 and" in msg and "row 5" in msg


def test_class_names_and_classes_are_checked(tmp_path, split_files):
    assert "class_names names ['postive']" in errmsg("c", data_cfg(class_names={"postive": "P"}), split_files)
    assert "share a display name" in errmsg("c", data_cfg(class_names={"pos": "X", "neg": "X"}), split_files)
    msg = errmsg("c", data_cfg(classes=["pos", "neg"]), split_files)
    assert "training labels ['neu']" in msg and "are not in c.data.classes" in msg
    assert "no training row has" in errmsg("c", data_cfg(classes=["pos", "neg", "neu", "spam"]), split_files)


def test_documents_empty_after_cleaning_are_counted_and_dropped(tmp_path, split_files, caplog):
    rows = review_rows(24)
    rows[3].update(title="!!!", body="...")
    rows[7].update(title="", body="-- ??")
    tr = write_csv(tmp_path / "tr.csv", rows)
    manifest = fetch("rev", "unused", tables={"train": tr, "test": split_files["test"]})
    out = {k: tmp_path / f"{k}.parquet" for k in ("train", "test")}
    with caplog.at_level(logging.WARNING):
        stats = prepare_text("rev", manifest, data_cfg(), 0, out["train"], out["test"], tmp_path / "stats.json")
    assert "rev train: dropping 2 of 24 documents that are empty after cleaning (ids train-4, train-8)" in caplog.text
    assert stats["dropped_empty"] == {"train": 2, "test": 0} and stats["train"]["n_docs"] == 22
    caplog.clear()
    section = {"kind": "custom", "data": data_cfg(files={"train": str(tr), "test": str(split_files["test"])})}
    with caplog.at_level(logging.WARNING, logger="xaipipe.data.custom"):
        resolve_section("rev", section)
    assert "rev: 2 train document(s) are empty after cleaning and are dropped" in caplog.text


def test_a_split_whose_documents_are_all_empty_after_cleaning(tmp_path, split_files):
    te = write_csv(tmp_path / "te.csv", [{"title": "?", "body": "!", "label": "pos"}] * 2)
    manifest = fetch("rev", "unused", tables={"train": split_files["train"], "test": te})
    with pytest.raises(ConfigError, match="every document of the test split is empty after cleaning"):
        prepare_text("rev", manifest, data_cfg(), 0, *(tmp_path / n for n in ("a.parquet", "b.parquet", "s.json")))


# --- the prepared files match the built-in datasets' ----------------------------------------------------

def test_prepare_text_writes_the_builtin_columns_and_stats(tmp_path, split_files):
    manifest = fetch("rev", "unused", tables=split_files)
    assert manifest["kind"] == "custom" and manifest["items"]["train"]["sha256"] == hashlib.sha256(
        split_files["train"].read_bytes()).hexdigest()
    data = data_cfg(id_column="id", class_names={"pos": "positive"}, max_train_docs=12)
    paths = [tmp_path / n for n in ("train.parquet", "test.parquet", "stats.json")]
    stats = prepare_text("rev", manifest, data, 0, *paths)
    tr = pd.read_parquet(paths[0])
    assert list(tr.columns) == BUILTIN_COLUMNS
    assert len(tr) == 12 and sorted(tr["label"].value_counts().tolist()) == [4, 4, 4]  # stratified subset
    assert set(tr["label_name"]) == {"neg", "neu", "positive"}
    assert tr["tokens"].map(list).tolist() == [tokenize(t) for t in tr["text"]]
    for key in ("classes", "n_classes", "dataset", "seed", "dropped_empty", "subset", "train", "test"):
        assert key in stats
    for key in ("n_docs", "docs_per_class", "length", "length_histogram"):
        assert key in stats["train"]
    assert stats["comparable_with_paper"] is False and "no published figure" in stats["note"]
    assert stats["files"]["train"]["sha256"] == manifest["items"]["train"]["sha256"]
    assert json.loads(paths[2].read_text())["label_values"] == ["neg", "neu", "pos"]


# --- settings derived from the data ---------------------------------------------------------------------

def _summary(lengths, n_classes=3):
    n = np.asarray(lengths)
    return {"n_classes": n_classes, "train_tokens": int(n.sum()),
            "train_length": {"mean": float(n.mean()), "percentiles": np.percentile(n, np.arange(101)).tolist()}}


def test_auto_max_len_reproduces_the_reports_choices():
    # report section 2.2: "length 80, since the mean length of the documents was around 35"; 2 x mean
    # rounded to ten gives 80 for our AG News re-split (mean 38.55) and 400 for 20 Newsgroups (mean 202.15)
    assert auto_max_len({"train_length": {"mean": 38.55}}) == 80
    assert auto_max_len({"train_length": {"mean": 202.15}}) == 400
    s = _summary([8, 12] * 50)  # mean 10, p90 12, median 10
    assert auto_max_len(s) == 20 and auto_max_len(s, "p90", 1.0) == 10 and auto_max_len(s, "median", 3) == 30
    assert auto_max_len(_summary([1, 2, 3])) == 10  # at least ten
    assert auto_max_len(_summary([24] * 4)) == 50 and auto_max_len(_summary([22] * 4)) == 40
    with pytest.raises(ConfigError, match="length_statistic"):
        auto_max_len(s, "p101")


def test_auto_channels_follow_the_reports_students():
    assert auto_channels("student", 20) == 8 and auto_channels("student", 4) == 2  # report sections 7.1, 7.2
    assert auto_channels("student", 3) == 2 and auto_channels("student", 10) == 4
    assert auto_channels("teacher", 20) == custom.TEACHER_CHANNELS


def test_auto_embedding_settings_follow_the_corpus_size():
    # a small corpus needs many passes: at 60,000 token passes fastText's vectors still all point one way
    assert custom.auto_embedding_epochs(20_000) == 250 and custom.auto_embedding_epochs(84_000) == 60
    assert custom.auto_embedding_epochs(2_357_000) == 5 and custom.auto_embedding_epochs(10) == 1000
    emb, _ = custom.resolve_embedding("x", {"dim": "auto", "min_count": "auto", "epochs": 7},
                                      _summary([1000] * 1000))  # a million tokens
    assert emb == {"dim": 300, "min_count": 2, "epochs": 7}


def test_resolve_section_fills_role_defaults_and_auto_values(tmp_path):
    rows = [{"title": "", "body": " ".join(["w"] * (8 if i % 2 else 12)), "label": i % 3} for i in range(60)]
    p = write_csv(tmp_path / "t.csv", rows)
    section = {"kind": "custom", "data": data_cfg(files={"train": str(p), "test": str(p)}),
               "embedding": {"kind": "word2vec", "dim": "auto", "min_count": 3},
               "models": {"teacher": {"epochs": 3}, "student_small": {"max_len": "auto", "length_factor": 1.5},
                          "wide": {"role": "student", "channels": 7, "max_len": None}}}
    before = json.dumps(section, sort_keys=True)
    out = resolve_section("lens", section)
    assert json.dumps(section, sort_keys=True) == before  # the config is not changed in place
    t, s, w = out["models"]["teacher"], out["models"]["student_small"], out["models"]["wide"]
    assert (t["max_len"], t["channels"], t["epochs"], t["hidden"], t["role"]) == (20, 512, 3, [256], "teacher")
    assert (s["max_len"], s["channels"], s["hidden"], s["dropout"], s["role"]) == (20, 2, [], 0.0, "student")
    assert (w["max_len"], w["channels"]) == (None, 7)  # explicit values stay
    assert out["embedding"] == {"kind": "word2vec", "dim": 100, "min_count": 3, "epochs": 1000}  # 5,000,000 / 600, capped
    # 1.5 x mean 10 = 15 -> rounded to 20; a default dataset section gets a teacher and a student
    out = resolve_section("lens", {"kind": "custom", "data": section["data"]})
    assert set(out["models"]) == {"teacher", "student"}
    assert out["embedding"] == {"dim": 100, "min_count": 1, "epochs": 1000}
    names = {0: "zero", "1": "one"}
    out = resolve_section("lens", {"kind": "custom", "data": dict(section["data"], class_names=names)})
    assert out["data"]["class_names"] == {"0": "zero", "1": "one"}  # JSON-safe keys for params and hashes
    with pytest.raises(ConfigError, match="reserved"):
        resolve_section("summary", section)


def test_data_summary_is_cached_until_the_file_changes(tmp_path, split_files, monkeypatch):
    data = data_cfg(files={k: str(v) for k, v in split_files.items()})
    first = data_summary("rev", data, 0, tmp_path / "cache")
    assert first["n_docs"] == {"train": 24, "test": 6} and (tmp_path / "cache" / "rev.json").is_file()

    def boom(*a, **k):
        raise AssertionError("re-read")

    monkeypatch.setattr(custom.summary, "summarise", boom)  # where data_summary looks it up
    assert data_summary("rev", data, 0, tmp_path / "cache") == first
    with pytest.raises(AssertionError, match="re-read"):
        data_summary("rev", dict(data, lowercase=False), 0, tmp_path / "cache")
    with pytest.raises(AssertionError, match="re-read"):  # mixed key types in a mapping still make a key
        data_summary("rev", dict(data, class_names={1: "a", "neg": "b"}), 0, tmp_path / "cache")
    st = split_files["test"].stat()
    os.utime(split_files["test"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="re-read"):
        data_summary("rev", data, 0, tmp_path / "cache")


# --- the schema of a custom section ---------------------------------------------------------------------

def validate_section(tmp_path, section: dict) -> dict:
    """Validate one custom section with snakemake's default-filling validator against the fragment."""
    from snakemake.utils import validate

    frag = (ROOT / "config" / "schema" / "custom_dataset.yaml").as_uri()
    wrapper = tmp_path / "wrapper.yaml"
    wrapper.write_text(yaml.safe_dump({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"mine": {"$ref": f"{frag}#/definitions/custom_dataset"}}}))
    cfg = {"mine": section}
    validate(cfg, str(wrapper), set_default=True)
    return cfg["mine"]


def test_schema_fills_defaults_and_rejects_bad_values(tmp_path):
    from snakemake.exceptions import WorkflowError

    sec = validate_section(tmp_path, {"kind": "custom", "data": data_cfg(path="x.csv", split_column="s"),
                                      "explain": {"methods": {"occ": {"method": "occlusion"}}}})
    assert sec["data"]["format"] == "auto" and sec["data"]["encoding"] == "utf-8"
    assert sec["data"]["split_values"] == {"train": ["train"], "test": ["test"]}
    assert sec["embedding"]["kind"] == "fasttext" and sec["embedding"]["dim"] == "auto"
    assert sec["models"] == {"teacher": {}, "student": {}}
    assert sec["explain"]["target"] == "pred" and sec["evaluate"]["K"] == 20  # main schema's definitions
    for bad in ({"data": data_cfg(path="x")},  # no kind
                {"kind": "custom", "data": data_cfg(path="x"), "models": {"t": {"channels": "big"}}},
                {"kind": "custom", "data": data_cfg(path="x", sep=",")},
                {"kind": "custom", "data": data_cfg(path="x", format="xlsx")},
                {"kind": "custom", "data": {"path": "x", "label_column": "l"}}):
        with pytest.raises(WorkflowError):
            validate_section(tmp_path, bad)


# --- end to end: the Snakefile on a CSV and a parquet file ----------------------------------------------

def smk(workdir: Path, *args: str, overlay: dict, check: bool = True) -> subprocess.CompletedProcess:
    """The Snakefile on config/tiny.yaml + ``overlay`` in ``workdir`` (test_workflow's runner)."""
    return _smk(workdir, *args, overlays=(overlay,), check=check)


# global settings and the built-in dataset sections; every other top-level section of config.yaml and
# tiny.yaml is a stage (distillation, RNN cells, ...), switched off with null for these runs
GLOBAL_KEYS = {"seed", "device", "threads", "explain_threads", "raw_dir", "data_mirror", "offline", "verify_checksums", "datasets",
               "resources", "ng20", "agnews", "mnist", "planted"}


def other_stages_off() -> dict:
    keys = set(yaml.safe_load((ROOT / "config.yaml").read_text()))
    keys |= set(yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text()))
    return {k: None for k in sorted(keys - GLOBAL_KEYS)}


# plumbing on 60 rows: two epochs, no minimum of steps, and no chance gate (such a model may learn nothing;
# the planted-corpus tests hold the models that must learn)
TINY_MODELS = {"teacher": {"channels": 8, "hidden": [8], "epochs": 2, "patience": 0, "min_steps": 0,
                           "require_above_chance": False},
               "student": {"epochs": 2, "patience": 0, "min_steps": 0, "require_above_chance": False}}


def e2e_overlay(csv_files: dict, pq: Path) -> dict:
    return {
        **other_stages_off(), "data_mirror": None,
        "datasets": ["reviews_csv", "reviews_pq"],
        "reviews_csv": {"kind": "custom",
                        "data": {"files": {k: str(v) for k, v in csv_files.items()}, "text_columns": ["title", "body"],
                                 "label_column": "label", "class_names": {1: "positive", 2: "negative", 3: "neutral"}},
                        "embedding": {"dim": 16, "epochs": 2}, "models": TINY_MODELS},
        "reviews_pq": {"kind": "custom",
                       "data": {"path": str(pq), "split_column": "split", "text_columns": ["title", "body"],
                                "label_column": "label", "id_column": "id", "max_train_docs": 40},
                       "embedding": {"dim": 16, "epochs": 2}, "models": TINY_MODELS,
                       "explain": {"models": ["teacher"], "documents_per_class": 1, "misclassified": 1,
                                   "heatmaps": 1, "max_doc_len": 30,
                                   "methods": {"occlusion": {"method": "occlusion"},
                                               "lrp_epsilon": {"method": "lrp_epsilon"}}},
                       "evaluate": {"K": 5, "n_draws": 2, "bootstrap": 50}},
    }


@pytest.mark.slow
def test_custom_csv_and_parquet_run_every_stage_like_a_builtin_dataset(tmp_path):
    rows = review_rows(60, seed=1)
    code = {"pos": 1, "neg": 2, "neu": 3}
    rows_int = [dict(r, label=code[r["label"]]) for r in rows]
    rows_int[5].update(title="!!", body="??")  # empty after cleaning: dropped with a warning
    data = tmp_path / "data"
    csv_files = {"train": write_csv(data / "train.csv", rows_int[:48]),
                 "test": write_csv(data / "test.csv", rows_int[48:])}
    pq = data / "reviews.parquet"
    pd.DataFrame(rows).assign(split=["test" if i % 5 == 0 else "train" for i in range(60)]).to_parquet(pq)
    wd = tmp_path / "run"
    wd.mkdir()
    ov = e2e_overlay(csv_files, pq)
    res = smk(wd, overlay=ov)
    assert "reviews_csv: 1 train document(s) are empty after cleaning and are dropped" in res.stderr
    assert "reviews_csv.models.student.channels: auto -> 2" in res.stderr
    out = wd / "results"
    for d in ("reviews_csv", "reviews_pq"):
        manifest = json.loads((out / d / "data" / "manifest.json").read_text())
        assert manifest["kind"] == "custom"
        for item in manifest["items"].values():
            assert item["sha256"] == hashlib.sha256(Path(item["path"]).read_bytes()).hexdigest()
        stats = json.loads((out / d / "data" / "stats.json").read_text())
        for split in ("train", "test"):
            df = pd.read_parquet(out / d / "data" / f"{split}.parquet")
            assert list(df.columns) == BUILTIN_COLUMNS and len(df) == stats[split]["n_docs"] > 0
        assert (out / d / "data" / "length_histogram.png").stat().st_size > 0
        for f in ("vocab.txt", "vectors.npy", "info.json"):
            assert (out / d / "embedding" / f).stat().st_size > 0
        expected_len = max(10, int(np.floor(2 * stats["train"]["length"]["mean"] / 10 + 0.5)) * 10)
        for m in ("teacher", "student"):
            mdir = out / d / "models" / m
            metrics = json.loads((mdir / "metrics.json").read_text())
            for key in ("accuracy", "per_class_accuracy", "confusion_matrix", "n_parameters"):
                assert key in metrics, (d, m, key)
            assert metrics["max_len"] == expected_len and metrics["comparable_with_paper"] is False
            assert list(pd.read_csv(mdir / "history.csv")["epoch"]) == [1, 2]
            assert (mdir / "model.pt").stat().st_size > 0 and (mdir / "history.png").stat().st_size > 0
            assert (wd / "logs" / d / f"train_{m}.log").is_file()
            assert (wd / "benchmarks" / d / f"train_{m}.tsv").is_file()
    csv_stats = json.loads((out / "reviews_csv" / "data" / "stats.json").read_text())
    assert csv_stats["classes"] == ["positive", "negative", "neutral"] and csv_stats["dropped_empty"]["train"] == 1
    assert csv_stats["train"]["n_docs"] == 47
    pq_stats = json.loads((out / "reviews_pq" / "data" / "stats.json").read_text())
    assert pq_stats["train"]["n_docs"] == 40 and pq_stats["classes"] == ["neg", "neu", "pos"]
    ex = out / "reviews_pq" / "explain" / "teacher"
    docs = pd.read_parquet(ex / "documents.parquet")
    assert set(docs["id"]) <= {r["id"] for r in rows}
    for v in ("occlusion", "lrp_epsilon"):
        rel = pd.read_parquet(ex / v / "relevance.parquet")
        assert list(rel["id"]) == list(docs["id"])
        assert all(len(t) == len(r) for t, r in zip(rel["tokens"], rel["relevance"]))
        assert any((ex / v / "heatmaps").glob("*.png"))
    ev = out / "reviews_pq" / "evaluate" / "teacher"
    assert set(pd.read_csv(ev / "ranking.csv")["variant"]) == {"occlusion", "lrp_epsilon", "random"}
    assert (ev / "figures" / "accuracy_zero.png").stat().st_size > 0
    table = pd.read_csv(out / "summary" / "models.csv")
    assert sorted(zip(table["dataset"], table["model"])) == [
        ("reviews_csv", "student"), ("reviews_csv", "teacher"), ("reviews_csv", "tfidf_reference"),
        ("reviews_pq", "student"), ("reviews_pq", "teacher"), ("reviews_pq", "tfidf_reference")]
    assert table["published_accuracy"].isna().all()
    report = pd.read_csv(out / "report" / "tables" / "models_accuracy.csv")  # the report's entries
    assert set(report["dataset"]) == {"reviews_csv", "reviews_pq"}
    index = (out / "index.html").read_text()
    assert "reviews_pq/evaluate/teacher/ranking.csv" in index and "reviews_csv/data/length_histogram.png" in index
    readme = (out / "report" / "README_results.md").read_text()  # the README's generated results section
    assert "Deletion-curve ranking, reviews_pq teacher" in readme and "published_accuracy" in readme
    assert not list(out.rglob("*.tmp*"))

    # nothing to do on a second run; editing a user file reruns exactly that dataset's chain
    assert "Nothing to be done" in (r := smk(wd, "-n", overlay=ov)).stdout + r.stderr
    with open(csv_files["train"], "a", newline="") as fh:
        fh.write("r999,Great Love,great love excellent,1\n")
    counts = job_counts((r := smk(wd, "-n", overlay=ov)).stdout + r.stderr)
    counts = {k: v for k, v in counts.items() if not k.startswith("report_")}  # the report follows the summary
    assert counts == {"fetch_data": 1, "prepare_text": 1, "embedding": 1, "tfidf_reference": 1, "train_text_model": 2,
                      "models_summary": 1, "all": 1}, counts


@pytest.mark.slow
def test_invalid_custom_data_stops_the_workflow_before_any_job(tmp_path):
    rows = review_rows(12)
    p = write_csv(tmp_path / "t.csv", rows)
    ov = {**other_stages_off(), "data_mirror": None, "datasets": ["broken"],
          "broken": {"kind": "custom", "data": {"files": {"train": str(p), "test": str(p)},
                                                 "text_columns": ["title", "review"], "label_column": "label"}}}
    res = smk(tmp_path, overlay=ov, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "broken.data: " in out and "no column 'review' (broken.data.text_columns[1])" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


# --- the stratified validation split of training --------------------------------------------------------

def test_val_split_problem_matches_scikit_learn():
    """None exactly when scikit-learn's stratified split (what training does) succeeds."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(0)
    for _ in range(300):
        counts = {f"c{i}": int(n) for i, n in enumerate(rng.integers(1, 6, rng.integers(2, 6)))}
        fraction = float(rng.choice([0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 0.95]))
        y = np.repeat(np.arange(len(counts)), list(counts.values()))
        try:
            train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=0)
            ok = True
        except ValueError:
            ok = False
        assert (custom.val_split_problem(counts, fraction) is None) == ok, (counts, fraction)
    assert custom.val_split_problem({"a": 1, "b": 9}, 0) is None  # no validation split


def test_a_class_with_one_training_document_stops_before_any_job(tmp_path):
    """One 'neu' review in training: training's stratified validation split would fail with a scikit-learn
    traceback after the data and embedding jobs; the Snakefile names the class, the count and the fix."""
    rows = [r for r in review_rows(60) if r["label"] != "neu"]
    rows_train = rows[:36] + [dict(review_rows(3)[2], id="lonely")]
    tr, te = write_csv(tmp_path / "train.csv", rows_train), write_csv(tmp_path / "test.csv", rows[36:])
    section = {"kind": "custom", "data": data_cfg(files={"train": str(tr), "test": str(te)})}
    with pytest.raises(ConfigError) as err:
        resolve_section("rev", section)
    msg = str(err.value)
    assert ("config: rev.models.teacher: class 'neu' has only 1 training document; the stratified validation split "
            "(val_fraction = 0.1) needs at least 2 per class") in msg
    assert "set rev.models.teacher.val_fraction: 0" in msg
    ok = resolve_section("rev", {**section, "models": {"teacher": {"val_fraction": 0}, "student": {"val_fraction": 0}}})
    assert ok["models"]["teacher"]["val_fraction"] == 0
    ov = {**other_stages_off(), "data_mirror": None, "datasets": ["rev"], "rev": section}
    res = smk(tmp_path, "-n", overlay=ov, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "class 'neu' has only 1 training document" in out, out[-3000:]
    assert "Traceback" not in out and not (tmp_path / "results").exists()
