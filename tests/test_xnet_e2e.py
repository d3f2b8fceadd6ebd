"""XNet end to end on a tiny MNIST-shaped task: train baseline / XNet / EM-matching variants, write every
output file (checkpoint, metrics, drop-loss curves, activations, Table 1, Figures 1 and 2)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xaipipe.errors import XaipipeError
from xaipipe.xnet import (
    PUBLISHED_TABLE1,
    load_xnet,
    load_xnet_data,
    output_paths,
    run_variant,
    train_xnet,
    write_report,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread", "restore_torch_state")

EPOCHS = 2




def write_npz(path, n: int, seed: int) -> None:
    """MNIST-shaped uint8 digits: a bar whose width, slant and position vary, so that every pixel
    attribute has positive and negative examples."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int64)
    for i in range(n):
        width, shear, col = rng.integers(1, 5), rng.uniform(-0.5, 0.5), 8 + y[i]
        for r in range(4, 24):
            c = int(col + shear * (r - 14))
            x[i, r, c:c + width] = 255
    np.savez(path, x=x, y=y)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("xnet")
    write_npz(root / "train.npz", 240, 0)
    write_npz(root / "test.npz", 80, 1)
    data = load_xnet_data("mnist", {"train": str(root / "train.npz"), "test": str(root / "test.npz")},
                          {"task": "parity", "categories": ["thick", "slanted", "wide"], "attribute_quantile": 0.7,
                           "max_train": 200}, seed=0)
    variants = {"baseline": {"alpha": 0.0}, "xnet": {"alpha": 0.05, "reduction": "min"},
                "match_em": {"alpha": 0.05, "reduction": "mean", "matching": "em"}}
    training = {"epochs": EPOCHS, "batch_size": 32, "lr": 0.1, "log_every": 3, "eval_batch_size": 64}
    files, metrics = {}, {}
    for name, v in variants.items():
        files[name] = output_paths(root / "mnist" / name)
        metrics[name] = run_variant(data, {"backbone": "mlp", "hidden": [16]}, training, v, 0, "cpu", files[name],
                                    f"tiny/{name}", name)
    out = {"table_csv": str(root / "mnist" / "table1.csv"), "table_md": str(root / "mnist" / "table1.md"),
           "figure1": str(root / "mnist" / "figures" / "figure1_droploss.png"),
           "figure2": str(root / "mnist" / "figures" / "figure2_activations.png")}
    table = write_report(files, out, "mnist")
    return {"root": root, "files": files, "metrics": metrics, "out": out, "table": table, "data": data,
            "variants": variants, "training": training}


def test_every_output_is_written(tiny_run):
    for f in tiny_run["files"].values():
        assert sorted(Path(p).name for p in f.values()) == ["activations.csv", "droploss.csv", "droploss.png",
                                                           "metrics.json", "model.pt", "timing.json"]
        assert all(Path(p).stat().st_size > 0 for p in f.values())
    assert all(Path(p).stat().st_size > 0 for p in tiny_run["out"].values())
    assert not list(tiny_run["root"].rglob("*.tmp*"))  # atomic writes leave no temporary files


def test_table1_has_published_values_differences_and_the_note(tiny_run):
    t = pd.read_csv(tiny_run["out"]["table_csv"])
    assert t["variant"].tolist() == ["baseline", "xnet", "match_em"]
    base, xnet = t.iloc[0], t.iloc[1]
    assert base["published_accuracy"] == PUBLISHED_TABLE1["baseline"][1] == 0.8817
    assert xnet["published_accuracy"] == PUBLISHED_TABLE1["xnet"][1] == 0.8558
    assert xnet["difference"] == pytest.approx(round(xnet["accuracy"] - 0.8558, 4), abs=1e-4)
    assert xnet["published_change_vs_baseline"] == pytest.approx(-0.0259)
    assert xnet["change_vs_baseline"] == pytest.approx(round(xnet["accuracy"] - base["accuracy"], 4), abs=1e-4)
    assert pd.isna(t.iloc[2]["published_accuracy"])
    assert not t["comparable_with_paper"].any() and t["note"].str.contains("not directly comparable").all()
    md = open(tiny_run["out"]["table_md"]).read()
    assert "0.8817" in md and "0.8558" in md and "Note: Offline stand-in for CelebA: MNIST" in md


def test_metrics_match_the_saved_model(tiny_run):
    f, m = tiny_run["files"]["xnet"], tiny_run["metrics"]["xnet"]
    data = tiny_run["data"]
    model, meta = load_xnet(f["model"])
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1) for x, _, _ in data.test.batches(64, None)]).numpy()
    assert m["accuracy"] == pytest.approx(float((pred == data.test.y).mean()))
    assert meta["categories"] == ["thick", "slanted", "wide"] and meta["variant"]["alpha"] == 0.05
    on_disk = json.loads(open(f["metrics"]).read())
    assert on_disk["epochs_run"] == EPOCHS and len(on_disk["history"]) == EPOCHS
    assert on_disk["test_min_droploss"] == pytest.approx(min(on_disk["test_droploss_matched"].values()))
    diag = [on_disk["test_droploss_matrix"][j][i] for j, i in enumerate(on_disk["assignment"])]
    assert on_disk["test_droploss_matched"] == pytest.approx(dict(zip(on_disk["categories"], diag)), abs=1e-5)


def test_wall_times_are_only_in_timing_json(tiny_run):
    f = tiny_run["files"]["baseline"]
    timing = json.loads(open(f["timing"]).read())
    assert sorted(timing) == ["device", "epoch_seconds", "train_seconds"] and timing["device"] == "cpu"
    assert len(timing["epoch_seconds"]) == EPOCHS and all(s >= 0 for s in timing["epoch_seconds"])
    assert timing["train_seconds"] >= 0
    on_disk = json.loads(open(f["metrics"]).read())
    assert "train_seconds" not in on_disk and not any("seconds" in k for r in on_disk["history"] for k in r)
    assert not any("seconds" in c for c in pd.read_csv(tiny_run["out"]["table_csv"]).columns)
    _, meta = load_xnet(f["model"])
    assert "seconds" not in json.dumps(meta, default=str)


def test_a_second_run_writes_the_same_bytes_but_timing(tiny_run):
    first = tiny_run["files"]["xnet"]
    again = output_paths(tiny_run["root"] / "again" / "xnet")
    run_variant(tiny_run["data"], {"backbone": "mlp", "hidden": [16]}, tiny_run["training"],
                tiny_run["variants"]["xnet"], 0, "cpu", again, "tiny/xnet", "xnet")
    for key in ("model", "metrics", "droploss", "activations"):
        assert Path(again[key]).read_bytes() == Path(first[key]).read_bytes(), key


def test_droploss_curves_and_activations(tiny_run):
    c = pd.read_csv(tiny_run["files"]["baseline"]["droploss"])
    assert set(c["source"]) == {"train", "test"}
    test_rows = c[c["source"] == "test"]
    assert sorted(test_rows["epoch"].unique()) == list(range(EPOCHS + 1))      # before training + every epoch
    assert (test_rows.groupby("epoch").size() == 9).all()                      # 3 categories x 3 neurons
    assert (test_rows.groupby("epoch")["matched"].sum() == 3).all()            # one neuron per category
    assert (c["droploss"] >= 0).all()
    a = pd.read_csv(tiny_run["files"]["baseline"]["activations"])
    np.testing.assert_allclose(a.groupby("neuron")["share_mean"].sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(a.groupby("neuron")["share_sum"].sum(), 1.0, rtol=1e-5)


def test_regulariser_changes_training_and_em_matching_is_recorded(tiny_run):
    m = tiny_run["metrics"]
    assert m["baseline"]["history"][0]["train_objective"] == pytest.approx(m["baseline"]["history"][0]["train_loss"])
    assert m["xnet"]["history"][0]["train_objective"] < m["xnet"]["history"][0]["train_loss"]
    assert m["xnet"]["test_droploss_matrix"] != m["baseline"]["test_droploss_matrix"]
    em = m["match_em"]["matchings"]
    assert [r["before_epoch"] for r in em] == list(range(1, EPOCHS + 1))
    for r in em:  # each matching maximises the total drop-loss of its matrix
        mat = np.array(r["matrix"])
        chosen = sum(mat[j, i] for j, i in enumerate(r["assignment"]))
        assert chosen >= max(sum(mat[j, p[j]] for j in range(3))
                             for p in itertools.permutations(range(3))) - 1e-9


def test_an_unbounded_objective_stops_at_its_step_with_advice(tiny_run):
    """A large alpha on Eq. (1)'s sum drives the drop-losses to infinity within the first epoch."""
    with pytest.raises(XaipipeError, match=r"^tiny/div: the objective became nan at epoch 1, step [1-7] "
                                           r"\(classification loss .*\); .* lower alpha, lr or epochs$"):
        train_xnet(tiny_run["data"], {"backbone": "mlp", "hidden": [16]}, {**tiny_run["training"], "lr": 1.0},
                   {"alpha": 10.0, "reduction": "sum"}, seed=0, device="cpu", desc="tiny/div")
