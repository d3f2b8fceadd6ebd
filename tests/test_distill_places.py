"""Places2 distillation (report section 7.4): student architecture, official teacher checkpoints, both data
layouts, offline errors, the training loop's use of the teacher, and the whole code path on 18 generated
JPEGs with a random ResNet-50 saved like the CSAIL file."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn
from torch.nn import functional as F

from xaipipe.distill import places as P
from xaipipe.errors import ChecksumError, DataUnavailableError, XaipipeError
from xaipipe.io import read_json
from xaipipe.models import count_parameters

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["alpha", "beta", "gamma"]

pytestmark = pytest.mark.usefixtures("torch_single_thread", "no_xaipipe_env")


# --- fixtures ---------------------------------------------------------------------------------------
def write_jpeg(path: Path, rng: np.random.Generator, size: int = 40) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)


@pytest.fixture
def easyformat(tmp_path) -> Path:
    """``<tmp>/data/places365_standard/{train,val}/<class>/``: 12 train (4 per class) and 6 val JPEGs."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data" / "places365_standard"
    for split, n in (("train", 4), ("val", 2)):
        for cls in CLASSES:
            for i in range(n):
                write_jpeg(root / split / cls / f"{i:08d}.jpg", rng)
    return tmp_path / "data"


@pytest.fixture(scope="module")
def official_teacher(tmp_path_factory) -> tuple[Path, nn.Module]:
    """A random torchvision ResNet-50 (3 classes) saved like resnet50_places365.pth.tar: DataParallel keys
    (``module.`` prefix) inside ``{"epoch", "arch", "state_dict", "best_prec1"}``, and, as in a file from
    PyTorch 0.2, no ``num_batches_tracked`` buffers."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=3).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that a wrong key would show
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("teacher") / "resnet50_places365.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet50", "best_prec1": 54.7,
                "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()
                               if not k.endswith("num_batches_tracked")}}, path)
    return path, model


# --- the student ------------------------------------------------------------------------------------
def test_student_has_about_3m_parameters_as_documented():
    m = P.PlacesStudent()  # 365 classes
    # hand count of the documented layers: bias-free convolutions + batch norm (2 per channel) + 2 linears
    convs = 3 * 64 * 11 * 11 + 64 * 128 * 5 * 5 + 128 * 192 * 9 + 192 * 192 * 9 + 192 * 128 * 9
    bn = 2 * (64 + 128 + 192 + 192 + 128)
    fcs = (128 * 6 * 6) * 384 + 384 + 384 * 365 + 365
    assert count_parameters(m) == convs + bn + fcs == 2_913_965
    assert 2.7e6 < count_parameters(m) < 3.3e6  # report: "about 3 million parameters"
    for size in (224, 112, P.MIN_STUDENT_SIZE):  # the adaptive pool keeps the classifier's input fixed
        assert m.eval()(torch.randn(1, 3, size, size)).shape == (1, 365)
    with pytest.raises(RuntimeError):
        m(torch.randn(1, 3, P.MIN_STUDENT_SIZE - 1, P.MIN_STUDENT_SIZE - 1))


def test_student_skip_connection_adds_conv3_output():
    torch.manual_seed(0)
    m = P.PlacesStudent(n_classes=3).eval()
    block = m.features[11]
    assert isinstance(block, P.SkipBlock)
    seen = {}
    block.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0], y=out))
    m(torch.randn(2, 3, 64, 64))
    conv, bn = block.body
    ref = F.relu(F.batch_norm(F.conv2d(seen["x"], conv.weight, padding=1), bn.running_mean, bn.running_var,
                              bn.weight, bn.bias, eps=bn.eps) + seen["x"])
    assert torch.allclose(seen["y"], ref, atol=1e-5)
    with torch.no_grad():
        conv.weight.zero_()
    m(torch.randn(2, 3, 64, 64))
    assert torch.equal(seen["y"], F.relu(seen["x"]))  # the residual path alone passes conv3's output on
    # different widths: a 1x1 projection joins the skip
    assert isinstance(P.PlacesStudent(channels=[8, 8, 8, 16, 8]).features[11].proj, nn.Conv2d)


# --- the teacher ------------------------------------------------------------------------------------
def test_resnet50_places365_has_about_24m_parameters():
    m = P._torchvision_model("resnet50", 365, meta=True)
    assert count_parameters(m) == 24_255_917  # report: "about 24 million parameters"


def test_official_checkpoint_loads_with_module_prefix_stripped(official_teacher):
    path, ref = official_teacher
    m = P.load_teacher(path, "resnet50", n_classes=3)
    for k, v in ref.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(m.state_dict()[k], v), k
    assert not any(t.is_meta for t in [*m.parameters(), *m.buffers()])
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x))
    with pytest.raises(XaipipeError, match="predicts 3 classes but the data have 365"):
        P.load_teacher(path, "resnet50", n_classes=365)


def test_teacher_errors_name_the_problem(tmp_path, official_teacher):
    import torchvision

    r18 = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), r18)  # bare state dict, other arch
    with pytest.raises(XaipipeError, match="does not fit torchvision's resnet50"):
        P.load_teacher(r18, "resnet50")
    assert count_parameters(P.load_teacher(r18, "resnet18")) == count_parameters(torchvision.models.resnet18(num_classes=3))
    with pytest.raises(XaipipeError, match="not a torchvision classification model"):
        P.load_teacher(r18, "alexnet_places")
    with pytest.raises(DataUnavailableError, match="nothere.pth.tar"):
        P.load_teacher(tmp_path / "nothere.pth.tar")
    # objects beyond tensors are never unpickled (a checksum does not make them safe); the message says how
    odd = tmp_path / "odd.pth.tar"
    torch.save({"state_dict": {"module.w": torch.ones(1)}, "args": argparse.Namespace(lr=0.1)}, odd)
    with pytest.raises(XaipipeError, match=r"never unpickles.*state_dict"):
        P._read_checkpoint(odd)
    plain = tmp_path / "plain.pth.tar"
    torch.save({"state_dict": {"module.w": torch.ones(1)}, "best_prec1": 54.7, "arch": "resnet50"}, plain)
    assert P.teacher_state_dict(P._read_checkpoint(plain)) == {"w": torch.ones(1)}


# --- data -------------------------------------------------------------------------------------------
def test_folder_layout_index_and_seeded_subset(easyformat, tmp_path):
    manifest, train, val = P.build_index(str(easyformat), tmp_path / "raw")
    assert manifest["layout"] == "folder" and manifest["classes"] == CLASSES
    assert manifest["root"] == str((easyformat / "places365_standard").resolve())
    assert (len(train), len(val)) == (12, 6) and not manifest["complete"]["val"]
    assert train["label"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert all(p.startswith(f"train/{CLASSES[y]}/") for p, y in zip(train["path"], train["label"]))
    m2, t2, v2 = P.build_index(str(easyformat), tmp_path / "raw", max_train_per_class=2, seed=3)
    assert np.bincount(t2["label"]).tolist() == [2, 2, 2] and set(t2["path"]) < set(train["path"])
    assert t2.equals(P.build_index(str(easyformat), tmp_path / "raw", max_train_per_class=2, seed=3)[1])
    # found through <raw_dir>/places365 as well
    raw = tmp_path / "raw2"
    (raw / "places365").mkdir(parents=True)
    (raw / "places365" / "places365_standard").symlink_to(easyformat / "places365_standard")
    assert P.build_index(None, raw)[0]["classes"] == CLASSES
    # and in a mirror's places365_standard/ folder
    assert P.locate_data(None, tmp_path / "empty", mirror=str(easyformat)) == (easyformat / "places365_standard", "folder")


def test_easyformat_names_follow_the_category_file():
    assert P.easyformat_name("/a/apartment_building/outdoor") == "apartment_building-outdoor"
    assert P.easyformat_name("/a/airfield") == "airfield"


def test_list_layout_with_official_files(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "lists"
    cats = ["/a/alpha", "/b/beta/indoor", "/g/gamma"]
    root.mkdir()
    (root / "categories_places365.txt").write_text("".join(f"{c} {i}\n" for i, c in enumerate(cats)))
    train_lines, val_lines = [], []
    for i, c in enumerate(cats):
        for j in range(2):
            rel = f"{c}/{j + 1:08d}.jpg"
            write_jpeg(root / "data_256" / rel.lstrip("/"), rng)
            train_lines.append(f"{rel} {i}\n")
        name = f"Places365_val_{i + 1:08d}.jpg"
        write_jpeg(root / "val_256" / name, rng)
        val_lines.append(f"{name} {i}\n")
    (root / "places365_train_standard.txt").write_text("".join(train_lines))
    (root / "places365_val.txt").write_text("".join(val_lines))
    (root / "places365_test.txt").write_text("")
    manifest, train, val = P.build_index(str(root), tmp_path / "raw", verify=False)
    assert manifest["layout"] == "lists" and manifest["classes"] == ["alpha", "beta-indoor", "gamma"]
    assert train["path"].tolist()[2] == "data_256/b/beta/indoor/00000001.jpg"
    assert val["path"].tolist() == [f"val_256/Places365_val_{i:08d}.jpg" for i in (1, 2, 3)]
    assert val["label"].tolist() == [0, 1, 2]
    with pytest.raises(ChecksumError, match="categories_places365.txt"):  # these are not the official lists
        P.build_index(str(root), tmp_path / "raw", verify=True)


def test_offline_without_data_names_folders_and_files(tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(DataUnavailableError) as err:
        P.index_stage({"teacher": {"arch": "resnet50"}}, str(raw), None, offline=True, verify=True, seed=0,
                      outputs={k: tmp_path / f"{k}.out" for k in ("manifest", "train", "val")})
    msg = str(err.value)
    for part in (str(raw / "places365"), "places365standard_easyformat.tar", "places365_standard/train/<class>",
                 "categories_places365.txt", "val_256", "resnet50_places365.pth.tar",
                 P.TEACHER_SHA256["resnet50"], "offline", "distill_places.data_dir"):
        assert part in msg, part
    assert not any((tmp_path / f"{k}.out").exists() for k in ("manifest", "train", "val"))
    with pytest.raises(DataUnavailableError, match=re.escape(str(tmp_path / "elsewhere"))):
        P.build_index(str(tmp_path / "elsewhere"), raw)
    with pytest.raises(DataUnavailableError, match="distill_places.teacher.weights"):
        P.resolve_teacher("resnet50", str(tmp_path / "mine.pth"), None, raw)


# --- training ---------------------------------------------------------------------------------------
def _tiny_run(teacher, alpha, seed=0):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 64, 64, generator=g), torch.arange(8) % 3
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    torch.manual_seed(seed)
    student = P.PlacesStudent(n_classes=3, channels=[4, 4, 4, 4, 4], hidden=8)
    cfg = {"epochs": 1, "lr": 0.1, "warmup_epochs": 0}
    hist = P.fit_student(student, teacher, loader, loader, alpha, 2.0, cfg, torch.device("cpu")).history
    return student, hist


def test_kd_variant_learns_from_the_teacher_and_ce_ignores_it():
    def teacher(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 3)).eval()

    kd1, h1 = _tiny_run(teacher(1), 0.5)
    kd2, _ = _tiny_run(teacher(2), 0.5)
    w = lambda m: torch.cat([p.flatten() for p in m.parameters()])  # noqa: E731
    assert not torch.allclose(w(kd1), w(kd2))
    ce1, hc = _tiny_run(teacher(1), 0.0)
    ce0, _ = _tiny_run(None, 0.0)
    assert torch.equal(w(ce1), w(ce0))
    assert h1[0]["train_kd"] > 0 and np.isnan(hc[0]["train_kd"])
    assert set(h1[0]) >= {"epoch", "train_loss", "train_ce", "val_top1", "val_top5", "lr"}
    with pytest.raises(XaipipeError, match="needs the teacher"):
        _tiny_run(None, 0.5)


def test_distill_loss_is_hinton_mixture():
    from xaipipe.losses.kd import kd_loss

    s, t, y = torch.randn(5, 4), torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    assert torch.equal(P.distill_loss(s, None, y, 0.0, 4.0), F.cross_entropy(s, y))
    # Hinton's mixture written out, in the order of the report's formula: bit for bit the same
    assert torch.equal(P.distill_loss(s, t, y, 0.3, 4.0), 0.3 * kd_loss(s, t, 4.0) + (1.0 - 0.3) * F.cross_entropy(s, y))


# --- the whole code path ----------------------------------------------------------------------------
def _reference_eval(model, root, table, resize, crop):
    """Mean cross-entropy and top-1 from PIL + torchvision transforms, one image at a time."""
    from PIL import Image
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(P.MEAN, P.STD)])
    losses, hits = [], []
    model.eval()
    with torch.no_grad():
        for path, y in zip(table["path"], table["label"]):
            logits = model(tf(Image.open(Path(root) / path).convert("RGB"))[None])
            losses.append(float(F.cross_entropy(logits, torch.tensor([y]))))
            hits.append(int(logits.argmax()) == y)
    return float(np.mean(losses)), float(np.mean(hits))


def test_smoke_index_teacher_students_table(easyformat, official_teacher, tmp_path):
    weights, _ = official_teacher
    cfg = {"data_dir": str(easyformat), "max_train_per_class": None, "max_val_per_class": None,
           "teacher": {"arch": "resnet50", "weights": str(weights), "sha256": None, "ten_crop": False,
                       "resize": 36, "crop": 32, "batch_size": 4, "input_size": 32},
           "student": {"image_size": 64}, "train": {"epochs": 2, "batch_size": 4, "eval_batch_size": 4, "lr": 0.01},
           "variants": {"ce": {"alpha": 0.0}, "kd": {"alpha": 0.5, "temperature": 2.0}}}
    out = tmp_path / "results" / "places365"
    idx = {k: out / "index" / f"{k}.{'json' if k == 'manifest' else 'parquet'}" for k in ("manifest", "train", "val")}
    m = P.index_stage(cfg, str(tmp_path / "raw"), None, offline=True, verify=True, seed=0, outputs=idx)
    assert m["teacher"]["source"] == "config" and not m["teacher"]["official"]
    val = pd.read_parquet(idx["val"])
    assert len(val) == 6

    t = P.teacher_stage(str(idx["manifest"]), str(idx["val"]), cfg, "cpu", 0, str(out / "teacher_eval.json"),
                        str(out / "teacher" / "timing.json"))
    ref_loss, ref_top1 = _reference_eval(P.load_teacher(weights), m["root"], val, 36, 32)
    assert t["loss"] == pytest.approx(ref_loss, rel=1e-4) and t["top1"] == pytest.approx(ref_top1)
    assert t["difference"] == pytest.approx(t["top1"] - 0.547) and t["comparable_with_paper"] is False
    assert "seconds" not in t and read_json(out / "teacher" / "timing.json")["eval_seconds"] >= 0
    cfg["teacher"]["ten_crop"] = True  # 10 crops of 32 from 36 px, class probabilities averaged
    t10 = P.teacher_stage(str(idx["manifest"]), str(idx["val"]), cfg, "cpu", 0, str(tmp_path / "t10.json"),
                          str(tmp_path / "t10_timing.json"))
    assert t10["n"] == 6 and t10["protocol"]["ten_crop"] and t10["loss"] != pytest.approx(t["loss"])

    students = {}
    for variant in ("ce", "kd"):
        o = {k: out / "students" / variant / n for k, n in
             (("model", "model.pt"), ("metrics", "metrics.json"), ("history", "history.csv"),
              ("timing", "timing.json"))}
        s = P.student_stage(str(idx["manifest"]), str(idx["train"]), str(idx["val"]), cfg, variant, 0, "cpu", 0, o)
        hist = pd.read_csv(o["history"])
        assert hist["epoch"].tolist() == [1, 2] and s["top1"] == pytest.approx(hist["val_top1"].iloc[-1], abs=1e-5)
        # wall times only in timing.json, so that history and metrics are byte-identical between runs
        assert len(read_json(o["timing"])["epoch_seconds"]) == 2 and read_json(o["timing"])["train_seconds"] >= 0
        assert "seconds" not in o["history"].read_text() + o["metrics"].read_text()
        model, meta = P.load_student(o["model"])
        assert meta["variant"] == variant and meta["classes"] == CLASSES
        ref_loss, ref_top1 = _reference_eval(model, m["root"], val, 73, 64)  # 73 = round(64 / 0.875)
        assert s["val_loss"] == pytest.approx(ref_loss, rel=1e-4) and s["top1"] == pytest.approx(ref_top1)
        assert s["n_train"] == 12 and s["published_top1"] == P.PUBLISHED_TOP1[variant]
        students[variant] = str(o["metrics"])
    assert read_json(students["kd"])["temperature"] == 2.0 and read_json(students["ce"])["temperature"] is None

    df = P.table_stage(str(out / "teacher_eval.json"), students, str(out / "table.csv"), str(out / "table.md"))
    assert df["model"].tolist() == ["teacher", "student_ce", "student_kd"]
    assert df["published_top1"].tolist() == [0.547, 0.27, 0.29]
    assert np.allclose(df["difference"], (df["top1"] - df["published_top1"]).round(4), atol=1e-4)
    assert "| student_kd" in (out / "table.md").read_text()


# --- config and workflow ----------------------------------------------------------------------------
def test_schema_defaults_and_rejections():
    from snakemake.utils import validate

    schema = str(ROOT / "config" / "schema" / "distill_places.yaml")
    cfg = {}
    validate(cfg, schema, set_default=True)
    assert cfg["enabled"] and cfg["teacher"]["arch"] == "resnet50" and cfg["student"]["channels"] == [64, 128, 192, 192, 128]
    assert cfg["variants"] == {"ce": {"alpha": 0.0, "temperature": 4.0}, "kd": {"alpha": 0.5, "temperature": 4.0}}
    assert P.student_kwargs(365, cfg["student"])["channels"] == [64, 128, 192, 192, 128]
    for bad in ({"student": {"channels": [1, 2, 3, 4]}}, {"variants": {"kd": {"alpha": 2}}}, {"extra": 1},
                {"teacher": {"sha256": "abc"}}):
        with pytest.raises(Exception):
            validate(bad, schema, set_default=True)


def test_snakemake_dry_run_builds_the_places_dag(tmp_path):
    overlay = tmp_path / "places.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": ["mnist"], "distill_places": {  # mnist: no explain imports
        "enabled": True, "data_dir": str(tmp_path / "places"), "variants": {"ce": {"alpha": 0.0}, "kd": {"alpha": 0.5}}}}))
    targets = ["results/places365/table.csv", "results/places365/table.md"]
    res = subprocess.run([sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "tiny.yaml"),
                          str(overlay)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for rule, n in (("places_index", 1), ("places_teacher", 1), ("places_student", 2), ("places_table", 1)):
        assert re.search(rf"^{rule}\s+{n}$", res.stdout, re.M), (rule, res.stdout[-2000:])
