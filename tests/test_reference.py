"""The TF-IDF + linear reference (xaipipe.reference) and its place in the models summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xaipipe.data.planted import generate
from xaipipe.reference import train_reference
from xaipipe.summary import models_table


@pytest.fixture(scope="module")
def planted():
    c = generate(n_train=400, n_test=200, n_classes=4, background_size=300, keywords_per_class=3,
                 keywords_per_doc=[1, 3], cross_rate=0.2, seed=11)
    frames = {s: pd.DataFrame({"tokens": c[s]["tokens"], "label": c[s]["label"]}) for s in ("train", "test")}
    return c, frames


def test_reference_learns_the_planted_task_and_its_top_words_are_the_keywords(tmp_path, planted):
    c, f = planted
    m = train_reference(f["train"], f["test"], c["classes"], {"top_features": 3}, 0,
                        tmp_path / "metrics.json", tmp_path / "top.csv")
    assert m["accuracy"] >= 0.95 and m["C"] in (0.1, 1.0, 10.0) and set(m["val_accuracy_by_C"]) == {"0.1", "1.0", "10.0"}
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == m["accuracy"]
    top = pd.read_csv(tmp_path / "top.csv")
    for ci, name in enumerate(c["classes"]):
        assert set(top[top["class"] == name]["word"]) == set(c["keywords"][ci])


def test_reference_is_deterministic(tmp_path, planted):
    c, f = planted
    for d in ("a", "b"):
        train_reference(f["train"], f["test"], c["classes"], {}, 0, tmp_path / d / "m.json", tmp_path / d / "t.csv")
    assert (tmp_path / "a/m.json").read_bytes() == (tmp_path / "b/m.json").read_bytes()


def test_models_table_puts_the_reference_beside_the_models(tmp_path):
    def write(path, acc):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"accuracy": acc, "n_errors": 1, "n_test": 10, "n_parameters": 5}))
        return str(path)

    models = [write(tmp_path / "results/planted/models/teacher/metrics.json", 0.9),
              write(tmp_path / "results/planted/models/student/metrics.json", 0.6),
              write(tmp_path / "results/mnist/models/teacher/metrics.json", 0.99)]
    refs = [write(tmp_path / "results/planted/reference/metrics.json", 0.95)]
    df = models_table(models, tmp_path / "m.csv", tmp_path / "m.md", reference_paths=refs)
    assert list(df["model"]) == ["teacher", "student", "tfidf_reference", "teacher"]
    assert list(df["vs_tfidf"].iloc[:2]) == [-0.05, -0.35] and pd.isna(df["vs_tfidf"].iloc[3])
