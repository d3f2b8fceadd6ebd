"""XDistillation end to end at toy size: MNIST-like images through every stage function (teacher, SHAP
targets, CAE, six students, explanations, Tables II-V, figures); the CIFAR-10 code path (official archive
format, checksummed source, VGG, large CAE, RGB superpixels) on generated 32x32x3 images; the schema; the
Snakemake dry run once the rules are included."""

from __future__ import annotations

import io
import pickle
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from xaipipe.distill.xdistill import stage
from xaipipe.distill.xdistill.cifar import ARCHIVE, fetch_cifar10, prepare_cifar10, read_cifar10
from xaipipe.distill.xdistill.models import load_model
from xaipipe.errors import ChecksumError, DataUnavailableError
from xaipipe.io import read_json

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"baseline": {"method": "baseline"}, "kd": {"method": "kd"}, "at": {"method": "at"},
           "nst": {"method": "nst"}, "ab": {"method": "ab"}, "xdistill": {"method": "xdistill"}}
TRAIN = {"epochs": 1, "batch_size": 32, "lr": 0.003, "optimizer": "adam", "val_fraction": 0.1}


def digit_like(n: int, seed: int, size: int = 28, channels: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose class c shows a bright bar at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = rng.integers(0, 40, (n, size, size)).astype(np.float64)
    for i, c in enumerate(y):
        r = 2 + 2 * c
        x[i, r:r + 3, 4:size - 4] += 200
        x[i, 4:size - 4, size - 3 - 2 * (c % 5):size - 1 - 2 * (c % 5)] += 120 * (c >= 5)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if channels:
        x = np.stack([x, x[:, ::-1], np.roll(x, 3, 1)], -1)  # (N, H, W, 3)
    return x, y.astype(np.int64)


def write_npz(path: Path, x, y) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return str(path)


def run_all(out: Path, dataset: str, train: str, test: str, dcfg: dict) -> dict:
    """Every stage function in DAG order, as the rules call them (with the rules' output paths)."""
    teacher = {k: str(out / "teacher" / f) for k, f in (("model", "model.pt"), ("metrics", "metrics.json"),
                                                          ("history", "history.csv"), ("timing", "timing.json"))}
    stage.run_teacher(train, test, dcfg, 0, "cpu", teacher)
    stage.run_cae_targets(teacher["model"], train, dcfg, 0, "cpu", str(out / "explanations" / "cae_targets.npz"))
    stage.run_teacher_eval(teacher["model"], train, test, dcfg, 0, "cpu",
                           str(out / "explanations" / "teacher_eval.npz"),
                           str(out / "explanations" / "teacher_eval" / "timing.json"))
    cae = {k: str(out / "cae" / f) for k, f in (("model", "model.pt"), ("metrics", "metrics.json"),
                                                  ("history", "history.csv"), ("examples", "examples.png"),
                                                  ("timing", "timing.json"))}
    stage.run_cae(str(out / "explanations" / "cae_targets.npz"), train, dcfg, 0, "cpu", cae)
    files = {}
    for variant, m in dcfg["methods"].items():
        d = out / "students" / variant
        o = {k: str(d / f) for k, f in (("model", "model.pt"), ("metrics", "metrics.json"),
                                        ("history", "history.csv"), ("timing", "timing.json"))}
        stage.run_student(variant, m, dcfg, teacher["model"], cae["model"], train, test, 0, "cpu", o)
        stage.run_student_explain(o["model"], str(out / "explanations" / "teacher_eval.npz"), train, test, dcfg, 0,
                                  "cpu", str(d / "explanations.npz"), str(d / "explanations" / "timing.json"))
        files[variant] = {"metrics": o["metrics"], "explanations": str(d / "explanations.npz")}
    tables = {f"table{i}_{e}": str(out / "tables" / f"table{i}.{e}") for i in (2, 3, 4, 5) for e in ("csv", "md")}
    tables["summary"] = str(out / "tables" / "summary.json")
    stage.run_tables(dataset, dcfg, teacher["metrics"], cae["metrics"], str(out / "explanations" / "teacher_eval.npz"),
                     files, tables)
    figures = {e: str(out / "figures" / f"{e}.png") for e in dcfg["evaluate"]["explainers"]}
    stage.run_figures(dataset, dcfg, str(out / "explanations" / "teacher_eval.npz"), test,
                      {v: f["explanations"] for v, f in files.items()}, figures)
    return {"tables": tables, "figures": figures, "cae": cae, "teacher": teacher}


def test_tiny_mnist_end_to_end(tmp_path, torch_single_thread):
    train = write_npz(tmp_path / "data" / "train.npz", *digit_like(300, 0))
    test = write_npz(tmp_path / "data" / "test.npz", *digit_like(100, 1))
    dcfg = {"data": {"max_train": None, "max_test": None},
            "teacher": {"arch": "lenet5", "loss": "mse", **TRAIN},
            "student": {"arch": "net", **TRAIN},
            "superpixels": {"n_segments": 19, "compactness": 0.1},
            "shap": {"n_train": 40, "background": 8, "nsamples": 4},
            "cae": {"size": "small", **TRAIN},
            "methods": METHODS,
            "evaluate": {"n_test": 10, "top_k": 2, "examples": 2,
                         "explainers": {"shap": {"nsamples": 4}, "gradcam": {}, "lime": {"num_samples": 20}}}}
    out = run_all(tmp_path / "xd", "mnist", train, test, dcfg)
    t2 = pd.read_csv(out["tables"]["table2_csv"])
    assert t2["method"].tolist() == ["teacher", "baseline", "kd", "xdistill"]
    assert t2["parameters"].tolist() == [61706, 8198, 8198, 17115]
    assert t2["paper_parameters"].tolist() == [61701, 8297, 8297, 17386]
    assert t2["paper_accuracy"].tolist() == [99.0, 97.0, 98.0, 98.0]
    np.testing.assert_allclose(t2["accuracy_diff"], (t2["accuracy"] - t2["paper_accuracy"]).round(2), atol=0.011)
    t3 = pd.read_csv(out["tables"]["table3_csv"])
    assert t3["method"].tolist() == ["teacher", *METHODS]
    for i in (4, 5):
        t = pd.read_csv(out["tables"][f"table{i}_csv"])
        assert t["variant"].tolist() == list(METHODS)
        assert {"shap", "shap_paper", "shap_diff", "gradcam", "lime"} <= set(t.columns)
        assert t.loc[t["method"] == "xdistill", "shap_paper"].item() == (0.026 if i == 4 else 70.5)
        assert "| xdistill" in Path(out["tables"][f"table{i}_md"]).read_text()
    # the metrics behind Table IV equal a direct computation from the saved explanations
    ev = np.load(tmp_path / "xd" / "explanations" / "teacher_eval.npz")
    st = np.load(tmp_path / "xd" / "students" / "kd" / "explanations.npz")
    same = ev["pred"] == st["pred"]
    summary = read_json(out["tables"]["summary"])
    if same.any():
        want = ((ev["maps_lime"][same] - st["maps_lime"][same]) ** 2).mean()
        assert summary["consistency"]["kd"]["lime"]["mse"] == pytest.approx(float(want), rel=1e-5)
    assert ev["maps_shap"].shape == (10, 28, 28) and ev["segments"].max() >= 5
    # the XDistillation student carries the trained CAE, frozen
    fused, meta = load_model(tmp_path / "xd" / "students" / "xdistill" / "model.pt")
    cae, _ = load_model(out["cae"]["model"])
    for a, b in zip(fused.cae.state_dict().values(), cae.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert meta["method"] == "xdistill"
    assert "cae" in np.load(tmp_path / "xd" / "students" / "xdistill" / "explanations.npz")
    hist = pd.read_csv(tmp_path / "xd" / "students" / "ab" / "history.csv")
    assert hist["phase"].tolist() == ["init", "main"]
    # wall times only in timing.json: one per history row (init epochs first), seconds per explainer
    assert len(read_json(tmp_path / "xd" / "students" / "ab" / "timing.json")["epoch_seconds"]) == len(hist)
    for part in ("teacher", "cae", "students/ab", "students/xdistill"):
        d = tmp_path / "xd" / part
        assert read_json(d / "timing.json")["train_seconds"] >= 0
        assert not [c for c in pd.read_csv(d / "history.csv").columns if "seconds" in c], part
        assert "seconds" not in (d / "metrics.json").read_text(), part
    for d in (tmp_path / "xd" / "explanations" / "teacher_eval", tmp_path / "xd" / "students" / "kd" / "explanations"):
        assert set(read_json(d / "timing.json")["explainer_seconds"]) == {"shap", "gradcam", "lime"}
    assert read_json(out["cae"]["metrics"])["n_parameters"] == 1077
    for f in list(out["figures"].values()) + [out["cae"]["examples"]]:
        assert Path(f).stat().st_size > 1000


# --- CIFAR-10 ---------------------------------------------------------------------------------------------
def _batch(x: np.ndarray, y: np.ndarray) -> bytes:
    return pickle.dumps({b"batch_label": b"fake", b"labels": [int(v) for v in y],
                         b"data": np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), -1),
                         b"filenames": [b"f.png"] * len(y)}, protocol=2)


def write_cifar_archive(path: Path, n_per_batch: int = 20, n_test: int = 40) -> Path:
    """A ``cifar-10-python.tar.gz`` in the official layout, with generated images."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        members = {f"data_batch_{i}": digit_like(n_per_batch, i, 32, 3) for i in range(1, 6)}
        members["test_batch"] = digit_like(n_test, 9, 32, 3)
        for name, (x, y) in members.items():
            data = _batch(x, y)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cifar_source_reader_and_checksums(tmp_path, no_xaipipe_env):
    with pytest.raises(DataUnavailableError, match=r"cifar-10-python\.tar\.gz.*c58f30108f718f92721af3b95e74349a"):
        fetch_cifar10(str(tmp_path / "raw"), offline=True)
    write_cifar_archive(tmp_path / "raw" / "cifar10" / ARCHIVE)
    with pytest.raises(ChecksumError, match="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"):
        fetch_cifar10(str(tmp_path / "raw"), offline=True)
    manifest = fetch_cifar10(str(tmp_path / "raw"), offline=True, verify=False)
    assert manifest["items"][ARCHIVE]["source"] == "local" and manifest["verified"] is False
    x_tr, y_tr, x_te, y_te = read_cifar10(manifest["items"][ARCHIVE]["path"])
    assert x_tr.shape == (100, 32, 32, 3) and x_tr.dtype == np.uint8 and x_te.shape == (40, 32, 32, 3)
    # channel-major rows are turned into (H, W, C) images
    np.testing.assert_array_equal(x_tr[:20], digit_like(20, 1, 32, 3)[0])
    # the unpickler rebuilds arrays only
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = pickle.dumps({b"data": __import__("os").getcwd}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(Exception, match="not allowed|not a readable"):
        read_cifar10(evil)


def test_cifar_code_path_on_generated_images(tmp_path, torch_single_thread, no_xaipipe_env):
    write_cifar_archive(tmp_path / "raw" / "cifar10" / ARCHIVE)
    data = tmp_path / "xd" / "data"
    prepare_cifar10(fetch_cifar10(str(tmp_path / "raw"), offline=True, verify=False), data / "train.npz",
                    data / "test.npz", data / "manifest.json")
    vgg = {"arch": "vgg", "arch_kwargs": {"cfg": [4, "M", 8, "M"]}}
    dcfg = {"data": {}, "teacher": {**vgg, "arch_kwargs": {"cfg": [8, "M", 8, "M"]}, **TRAIN, "optimizer": "sgd",
                                    "lr": 0.01, "schedule": "step", "milestones": [1], "augment": True},
            "student": {**vgg, **TRAIN, "augment": True},
            "superpixels": {"n_segments": 19, "compactness": 10.0},
            "shap": {"n_train": 40, "background": 8, "nsamples": 4},
            "cae": {"size": "large", "widths": [2, 2, 2, 2], **TRAIN},
            "methods": {"baseline": {"method": "baseline"}, "at": {"method": "at"}, "xdistill": {"method": "xdistill"},
                        "kd_wide": {"method": "kd", "arch": "vgg", "arch_kwargs": {"cfg": [6, "M", 6, "M"]}}},
            "evaluate": {"n_test": 6, "top_k": 2, "examples": 2,
                         "explainers": {"shap": {"nsamples": 4}, "gradcam": {}, "lime": {"num_samples": 20,
                                                                                          "hide_color": None}}}}
    out = run_all(tmp_path / "xd", "cifar10", str(data / "train.npz"), str(data / "test.npz"), dcfg)
    t2 = pd.read_csv(out["tables"]["table2_csv"])
    assert t2["method"].tolist() == ["teacher", "baseline", "xdistill", "kd"]
    assert t2["paper_accuracy"].isna().tolist() == [False, True, True, True]  # tiny VGGs are not vgg7/vgg11
    assert t2.loc[0, "paper_parameters"] == 14728266
    ev = np.load(tmp_path / "xd" / "explanations" / "teacher_eval.npz")
    assert ev["maps_shap"].shape == (6, 32, 32) and ev["segments"].shape == (6, 32, 32)
    fused, _ = load_model(tmp_path / "xd" / "students" / "xdistill" / "model.pt")
    assert fused.cae_dim == 32 * 32 and type(fused.cae).__name__ == "LargeCAE"
    kd = read_json(tmp_path / "xd" / "students" / "kd_wide" / "metrics.json")
    assert kd["arch"] == "vgg" and kd["n_parameters"] < read_json(out["teacher"]["metrics"])["n_parameters"] * 10


# --- config and workflow ------------------------------------------------------------------------------------
QUICK = {"datasets": ["mnist"], "mnist": {"methods": METHODS}}


def test_schema_defaults_and_rejections():
    from snakemake.utils import validate

    schema = str(ROOT / "config" / "schema" / "xdistill.yaml")
    cfg = yaml.safe_load(yaml.safe_dump(QUICK))
    validate(cfg, schema, set_default=True)
    m = cfg["mnist"]
    assert m["superpixels"]["n_segments"] == 19 and m["cae"]["size"] == "small" and m["teacher"]["arch"] == "lenet5"
    assert m["evaluate"]["explainers"]["gradcam"]["normalize"] == "max_abs" and m["evaluate"]["top_k"] == 2
    assert m["student"]["epochs"] == 5 and m["shap"]["output"] == "prob"
    for bad in ({"datasets": ["svhn"]}, {"datasets": [], "mnist": {"methods": {"x": {"method": "fitnet"}}}},
                {"datasets": [], "mnist": {"methods": METHODS, "cae": {"size": "huge"}}},
                {"datasets": [], "mnist": {"methods": METHODS, "extra": 1}},
                {"datasets": [], "mnist": {"methods": {"kd": {"method": "kd", "alpha": 2}}}}):
        with pytest.raises(Exception):
            validate(bad, schema, set_default=True)


def test_snakemake_dry_run_builds_the_xdistill_dag(tmp_path):
    overlay = tmp_path / "xd.yaml"
    cifar = {"teacher": {"arch": "vgg16"}, "student": {"arch": "vgg7"}, "cae": {"size": "large"},
             "superpixels": {"compactness": 10.0},
             "methods": {**METHODS, "kd_vgg11": {"method": "kd", "arch": "vgg11"}}}
    overlay.write_text(yaml.safe_dump({"datasets": ["mnist"], "xdistill": {
        "datasets": ["mnist", "cifar10"], "mnist": {"methods": METHODS}, "cifar10": cifar}}))
    targets = [f"results/xdistill/{d}/tables/table{i}.md" for d in ("mnist", "cifar10") for i in (2, 3, 4, 5)]
    targets += ["results/xdistill/cifar10/figures/shap.png", "results/xdistill/mnist/cae/examples.png"]
    res = subprocess.run([sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "tiny.yaml"),
                          str(overlay)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for rule, n in (("xdistill_cifar_data", 1), ("xdistill_teacher", 2), ("xdistill_cae", 2),
                    ("xdistill_student", 13), ("xdistill_student_explain", 13), ("xdistill_tables", 2)):
        assert re.search(rf"^{rule}\s+{n}$", res.stdout, re.M), (rule, res.stdout[-2000:])
    # only the XDistillation students depend on the CAE
    assert re.search(r"rule xdistill_student:\n\s+input: results/xdistill/cifar10/cae/model.pt", res.stdout)
