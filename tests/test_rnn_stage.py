"""RNN stage: Fashion-MNIST spec and data preparation, workflow planning (offline skip), config schema,
and a tiny end-to-end run (train -> explain -> figures -> tables) on a few hundred synthetic images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from xaipipe.data.catalog import CATALOG, FASHION_MNIST, MNIST
from xaipipe.data.sources import resolve
from xaipipe.errors import ConfigError, DataUnavailableError
from xaipipe.rnn.data import CLASSES, availability, load_split, prepare
from xaipipe.rnn.explain import FIGURE_DEFAULTS, explain_model, select_samples
from xaipipe.rnn.figures import make_figures
from xaipipe.rnn.plan import EXPLAIN_KEYS, TRAIN_KEYS, explain_params, make_plan, train_params
from xaipipe.rnn.published import TABLE_4_3, TABLE_4_4
from xaipipe.rnn.tables import table_4_3, table_4_5
from xaipipe.rnn.train import DEFAULTS, train_cell

pytestmark = pytest.mark.usefixtures("torch_single_thread", "no_xaipipe_env")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
SCHEMA = ROOT / "config" / "schema" / "rnn.yaml"


# --- Fashion-MNIST files --------------------------------------------------------------------------------


def test_fashion_mnist_spec_has_the_official_files_and_checksums():
    files = {f.name: f for f in FASHION_MNIST.files}
    assert set(files) == {f.name for f in MNIST.files}  # the same four IDX names
    assert files["train-images-idx3-ubyte.gz"].md5 == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert files["t10k-labels-idx1-ubyte.gz"].md5 == "bb300cfdad3c16e7a12a480ee83cd310"
    assert {f.size for f in files.values()} == {26421880, 29515, 4422102, 5148}
    assert all(len(f.sha256) == 64 and len(f.md5) == 32 for f in files.values())
    assert all("zalandoresearch/fashion-mnist" in f.urls[0] for f in files.values())
    assert all("/" in m for f in files.values() for m in f.mirror_names)  # never a mirror's top level
    assert set(CATALOG) == {"ng20", "agnews", "mnist"}  # the main pipeline's catalog is unchanged


def write_fashion_idx(make_idx, folder: Path, n_train=30, n_test=20) -> dict:
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": np.arange(n_train, dtype=np.uint8) % 10,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": np.arange(n_test, dtype=np.uint8) % 10}
    for name, arr in arrays.items():
        make_idx(folder / name, arr)
    return arrays


def test_fashion_mnist_offline_without_files_names_them(tmp_path):
    with pytest.raises(DataUnavailableError, match="8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        resolve(FASHION_MNIST, tmp_path / "raw", offline=True)
    ok, msg = availability("fashion_mnist", tmp_path / "raw", None, offline=True)
    assert not ok and "fashion_mnist" in msg and "train-images-idx3-ubyte.gz" in msg and "offline" in msg


def test_fashion_mnist_checksums_are_enforced(tmp_path, make_idx):
    write_fashion_idx(make_idx, tmp_path / "raw" / "fashion_mnist")
    from xaipipe.errors import ChecksumError

    with pytest.raises(ChecksumError, match="expected sha256"):
        resolve(FASHION_MNIST, tmp_path / "raw", offline=True)


def test_fashion_mnist_prepare_from_a_mirror_sub_folder(tmp_path, make_idx):
    arrays = write_fashion_idx(make_idx, tmp_path / "mirror" / "fashion-mnist")
    ok, _ = availability("fashion_mnist", tmp_path / "raw", str(tmp_path / "mirror"), offline=True)
    assert ok
    manifest = resolve(FASHION_MNIST, tmp_path / "raw", mirror=str(tmp_path / "mirror"), offline=True, verify=False)
    out = tmp_path / "out"
    stats = prepare("fashion_mnist", manifest, out / "train.npz", out / "test.npz", out / "stats.json")
    x, y = load_split(out / "test.npz")
    assert x.dtype == np.uint8 and x.shape == (20, 28, 28) and y.dtype == np.int64
    assert np.array_equal(x, arrays["t10k-images-idx3-ubyte.gz"])
    assert stats["classes"] == CLASSES["fashion_mnist"] and stats["train"]["n_docs"] == 30
    assert stats["verified"] is False


# --- planning --------------------------------------------------------------------------------------------


def rnn_config(**over) -> dict:
    cfg = {"datasets": ["mnist", "fashion_mnist"], "cells": ["shallow", "deep"], "seq": [1, 7],
           "lr": 0.001, "cell_lr": {"deep": 0.002}, "epochs": 2, "figures": {"seq": None}}
    cfg.update(over)
    return cfg


def test_plan_offline_skips_fashion_mnist_when_not_mirrored(tmp_path, make_idx):
    mirror = tmp_path / "mirror"
    for f in MNIST.files:  # MNIST mirrored (contents do not matter for planning)
        shape = (1, 28, 28) if "images" in f.name else (1,)
        make_idx(mirror / "mnist" / f.name, np.zeros(shape, np.uint8))
    config = {"datasets": ["mnist"], "raw_dir": str(tmp_path / "raw"), "data_mirror": str(mirror),
              "offline": True, "rnn": rnn_config()}
    plan = make_plan(config)
    assert plan.datasets == ["mnist"] and list(plan.skipped) == ["fashion_mnist"]
    assert "rnn: skipping dataset 'fashion_mnist'" in plan.skipped["fashion_mnist"]
    assert plan.own_data == []  # MNIST comes from the pipeline's results/mnist/data
    assert plan.data_dir("results", "mnist") == "results/mnist/data"
    assert plan.runs() == [("mnist", "shallow", 1), ("mnist", "shallow", 7), ("mnist", "deep", 1), ("mnist", "deep", 7)]
    assert plan.figure_seq == 7
    online = make_plan({**config, "offline": False, "datasets": ["ng20"]})
    assert online.datasets == ["mnist", "fashion_mnist"] and online.own_data == ["mnist", "fashion_mnist"]
    assert online.data_dir("results", "fashion_mnist") == "results/rnn/fashion_mnist/data"


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason=f"shared mirror {SHARED} not present")
def test_plan_with_the_shared_mirror_offline(tmp_path):
    plan = make_plan({"datasets": [], "raw_dir": str(tmp_path / "raw"), "data_mirror": str(SHARED),
                      "offline": True, "rnn": rnn_config()})
    assert plan.datasets == ["mnist"] and "fashion_mnist" in plan.skipped


def test_plan_rejects_values_the_schema_cannot_check(tmp_path):
    base = {"datasets": [], "raw_dir": str(tmp_path), "offline": False}
    with pytest.raises(ConfigError, match="figures.seq"):
        make_plan({**base, "rnn": rnn_config(figures={"seq": 4})})
    with pytest.raises(ConfigError, match="does not divide"):
        make_plan({**base, "rnn": rnn_config(seq=[5])})


def test_job_params_hold_only_what_changes_the_job():
    cfg = {**DEFAULTS, "cell_lr": {"deep": 0.002, "shallow": 0.003}, "figures": dict(FIGURE_DEFAULTS), "threads": 1,
           "datasets": ["mnist"], "cells": ["deep"], "seq": [7]}
    p = train_params(cfg, "deep")
    assert p["cell_lr"] == {"deep": 0.002} and "figures" not in p and set(p) == set(TRAIN_KEYS) | {"cell_lr"}
    assert train_params(cfg, "conv_deep")["cell_lr"] == {}
    assert set(explain_params(cfg)) == set(EXPLAIN_KEYS)


def test_schema_defaults_match_the_library_and_validate_the_configs():
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load(SCHEMA.read_text())
    props = schema["properties"]
    assert props["min_accuracy"]["default"] == TABLE_4_4  # the thesis's accuracies (Table 4.4)
    jsonschema.validate(rnn_config(), schema)
    jsonschema.validate({"epochs": 200, "cells": list(TABLE_4_3), "seq": [1, 4, 7, 14]}, schema)
    for bad in ({"cells": ["lstm"]}, {"seq": [5]}, {"epochs": 0}, {"pixel_range": [0]}, {"unknown": 1},
                {"figures": {"colour": "red"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_select_samples_is_seeded_and_covers_the_class():
    y = np.arange(100) % 10
    ex, pop = select_samples(y, 6, 1, None, seed=0)
    ex2, _ = select_samples(y, 6, 1, None, seed=0)
    assert np.array_equal(ex, ex2) and len(ex) == 6 and np.all(np.diff(ex) > 0)
    assert np.array_equal(pop, np.flatnonzero(y == 1))
    _, capped = select_samples(y, 6, 1, 4, seed=0)
    assert len(capped) == 4 and set(capped) <= set(pop)


# --- tiny end-to-end run ----------------------------------------------------------------------------------


def synthetic_split(path: Path, n: int, seed: int) -> None:
    """Images whose class is a bright vertical bar at columns 2c+4..2c+6 (learnable by every cell)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 4:24, 2 * c + 4:2 * c + 7] = 230
    np.savez_compressed(path, x=x, y=y.astype(np.int64))


def test_tiny_end_to_end_writes_every_output(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("rnn_e2e")
    synthetic_split(tmp_path / "train.npz", 300, 0)
    synthetic_split(tmp_path / "test.npz", 100, 1)
    cfg = {**DEFAULTS, "epochs": 3, "lr": 0.002, "figures": {**FIGURE_DEFAULTS, "n_examples": 4, "n_grid": 4}}
    runs = [("shallow", 1), ("shallow", 7), ("deep", 7), ("conv_deep", 7)]
    metrics, rel_paths = [], {}
    for cell, seq in runs:
        d = tmp_path / "rnn" / "mnist" / f"{cell}_seq{seq}"
        m = train_cell(tmp_path / "train.npz", tmp_path / "test.npz", "mnist", cell, seq, cfg, 0, "cpu",
                       {"model": d / "model.pt", "metrics": d / "metrics.json", "history": d / "history.csv"})
        assert m["n_parameters"] == m["published_parameters"] == TABLE_4_3[cell][seq]
        assert m["min_accuracy"] == 0.98 and m["n_train"] == 270 and m["n_val"] == 30 and m["n_test"] == 100
        assert len(pd.read_csv(d / "history.csv")) == 3
        s = explain_model(d / "model.pt", tmp_path / "test.npz", cfg, 0, d / "relevance.npz", d / "lrp.json")
        assert s["conservation"]["max_rel_error"] < 1e-4  # float32, Zennit's 1e-6 stabilizer
        assert s["n_population"] == 10 and s["n_examples"] == 4
        metrics.append(d / "metrics.json")
        rel_paths[(cell, seq)] = d / "relevance.npz"
    accs = [json.loads(p.read_text())["accuracy"] for p in metrics]
    assert max(accs) > 0.5  # the bars are learnable in 3 epochs (chance: 0.1)

    figs = tmp_path / "rnn" / "figures" / "mnist"
    out = {k: figs / f"{k.replace('_csv', '')}.{'csv' if k.endswith('csv') else 'png'}"
           for k in ("fig4_7", "fig4_8", "fig4_9", "fig4_9_csv")}
    info = make_figures(rel_paths, "mnist", cfg["figures"], 0, out)
    assert info["seq"] == 7 and all(p.stat().st_size > 1000 for p in out.values())
    f49 = pd.read_csv(out["fig4_9_csv"])
    assert set(f49["model"]) == {"Shallow-7", "Deep-7", "ConvDeep-7"} and len(f49) == 3 * 7
    for _, g in f49.groupby("model"):
        assert g["pixel_share"].sum() == pytest.approx(1) and g["relevance_share"].sum() == pytest.approx(1)
        tv = 0.5 * (g["relevance_share"] - g["pixel_share"]).abs().sum()
        assert g["tv_distance"].iloc[0] == pytest.approx(tv, rel=1e-4)

    t3 = table_4_3(tmp_path / "t43.csv", tmp_path / "t43.md")
    assert t3["match"].all() and len(t3) == 16
    assert "16 of 16 counts equal the thesis" in (tmp_path / "t43.md").read_text()
    t5 = table_4_5(metrics, tmp_path / "t45.csv", tmp_path / "t45.md")
    assert list(zip(t5["cell"], t5["seq"])) == runs
    published = dict(zip(zip(t5["cell"], t5["seq"]), t5["published_accuracy"]))
    assert published[("shallow", 1)] == 0.9813 and published[("deep", 7)] == 0.9852  # Table 4.5
    assert np.isnan(published[("conv_deep", 7)])  # the draft has none
    md = (tmp_path / "t45.md").read_text()
    assert "Shallow-7" in md and "0.98" in md and "3 / 200" in md
