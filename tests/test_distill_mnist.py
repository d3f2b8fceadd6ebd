"""MNIST explanation-guided distillation (xaipipe.distill.mnist_kd): the masked map MSE and the full loss
on hand values, the Table-1 grid and the variational schedule, config checks and schema defaults, the
map term's effect on the student's weights, and a 1-epoch run on synthetic images with the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.nn import functional as F

from xaipipe.distill.mnist_kd import (DEFAULTS, PUBLISHED_TABLE1, Experiment, LossWeights, build_table,
                                      experiment_grid, explanation_kd_loss, masked_map_mse, resolve_settings,
                                      run_experiment, variational_alpha_m)
from xaipipe.distill.relevance import relevance, scale_maps
from xaipipe.errors import ConfigError, XaipipeError
from xaipipe.io import read_json
from xaipipe.models import MLP, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_single_thread")
ROOT = Path(__file__).resolve().parents[1]

# the grid proposed for config.yaml (quick scale): Table 1 as printed, plus section 9's variant
GRID = {
    "ex1": {"alpha_k": 0, "alpha_m": 0},
    "ex2": {"alpha_k": 0.75, "alpha_m": 0, "temperature": 5},
    "ex3": {"alpha_k": 0.25, "alpha_m": 0, "temperature": 10},
    "ex4": {"alpha_k": 0.25, "alpha_m": 0, "temperature": 10, "seed": 1},
    "ex5": {"alpha_k": 1, "alpha_m": 0, "temperature": 5},
    "ex6": {"alpha_k": 0, "alpha_m": 1},
    "ex7": {"alpha_k": 0.5, "alpha_m": 0.5, "temperature": 10},
    "ex8": {"alpha_k": 0.33, "alpha_m": 0.33, "temperature": 10},
    "ex9": {"alpha_k": 0, "alpha_m": 0.5},
    "variational": {"alpha_k": 0, "alpha_m_schedule": {"start": 1.0, "scale": 0.5, "decay": 0.95}},
    "ex9_all_classes": {"alpha_k": 0, "alpha_m": 0.5, "maps": "all"},
}


# --- the loss ----------------------------------------------------------------------------------------
def test_masked_mse_ignores_teacher_misclassified_and_divides_by_their_count():
    r_s = torch.tensor([[[0.0, 1.0]], [[0.5, 0.5]], [[1.0, 1.0]]])   # (B=3, K=1, 2 pixels)
    r_t = torch.tensor([[[1.0, 1.0]], [[0.5, 0.0]], [[0.0, 0.0]]])
    # per-sample MSE (mean over pixels): (1 + 0)/2 = 0.5, (0 + 0.25)/2 = 0.125, (1 + 1)/2 = 1
    correct = torch.tensor([True, True, False])
    assert float(masked_map_mse(r_s, r_t, correct)) == pytest.approx((0.5 + 0.125) / 2)
    assert float(masked_map_mse(r_s, r_t, torch.tensor([False, False, True]))) == pytest.approx(1.0)
    assert float(masked_map_mse(r_s, r_t, torch.tensor([False, False, False]))) == 0.0
    # the misclassified sample gets no gradient; the teacher's maps none at all
    r_s = r_s.clone().requires_grad_(True)
    r_t = r_t.clone().requires_grad_(True)
    masked_map_mse(r_s, r_t, correct).backward()
    assert float(r_s.grad[2].abs().sum()) == 0.0 and float(r_s.grad[0].abs().sum()) > 0
    assert r_t.grad is None


def test_explanation_kd_loss_weights_and_denominators():
    zs = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
    zt = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 2, 0])            # the teacher gets sample 1 wrong
    r_s = torch.rand(4, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    r_t = torch.rand(4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    T = 4.0
    w = LossWeights(kd=0.25, ce=0.25, mse=0.5)
    total, parts = explanation_kd_loss(zs, zt, y, w, T, r_s, r_t)
    # reference: KD and CE averaged over all 4 samples, MSE over the 3 the teacher gets right
    p = F.softmax(zt / T, 1)
    kd = (p * (p.log() - F.log_softmax(zs / T, 1))).sum(1).mean() * T * T
    ce = -F.log_softmax(zs, 1)[torch.arange(4), y].mean()
    keep = [0, 2, 3]
    mse = ((r_s[keep] - r_t[keep]) ** 2).mean()
    assert float(total) == pytest.approx(float(0.25 * kd + 0.25 * ce + 0.5 * mse), rel=1e-6)
    assert parts["teacher_correct"] == 3
    assert parts["mse"] == pytest.approx(float(mse), rel=1e-6)
    # weights 0: the term is not needed (no maps, no temperature)
    only_ce, parts = explanation_kd_loss(zs, None, y, LossWeights(0.0, 1.0, 0.0))
    assert float(only_ce) == pytest.approx(float(ce), rel=1e-6) and set(parts) == {"ce"}
    with pytest.raises(XaipipeError, match="maps"):
        explanation_kd_loss(zs, zt, y, LossWeights(0.0, 0.5, 0.5))


# --- the grid ----------------------------------------------------------------------------------------
def test_grid_builds_table1_loss_weights():
    grid = experiment_grid({"experiments": GRID})
    for name in [f"ex{i}" for i in range(1, 10)]:
        pub = PUBLISHED_TABLE1[name]
        w = grid[name].weights(0)
        assert (w.kd, w.mse) == (pub["alpha_k"], pub["alpha_m"])
        assert w.ce == pytest.approx(1 - pub["alpha_k"] - pub["alpha_m"])
        assert grid[name].weights(7) == w                       # fixed weights
        assert grid[name].temperature == pub["temperature"] or not pub["alpha_k"]
        assert grid[name].matches_paper() and grid[name].paper == name
    assert grid["ex6"].weights(0) == LossWeights(kd=0.0, ce=0.0, mse=1.0)
    assert grid["ex1"].uses_maps is False and grid["ex7"].uses_maps is True
    # variational: alpha_m(i) = 1 - 0.5 * 0.95^i, alpha_k = 0, CE gets the rest
    var = grid["variational"]
    assert var.matches_paper() and var.uses_maps
    for i, am in enumerate([0.5, 0.525, 0.54875, 1 - 0.5 * 0.95 ** 3]):
        w = var.weights(i)
        assert w.mse == pytest.approx(am) and w.kd == 0.0 and w.ce == pytest.approx(1 - am)
    assert variational_alpha_m(60) == pytest.approx(1 - 0.5 * 0.95 ** 60)
    # section 9's variant: not a Table-1 row, maps of all classes
    extra = grid["ex9_all_classes"]
    assert extra.paper is None and extra.maps == "all" and not extra.matches_paper()
    assert grid["ex4"].seed == 1 and grid["ex4"].matches_paper()


def test_configured_grids_match_the_paper_rows():
    """Every Table-1 row of the repository's configs (where they have the section) uses the paper's
    weights and temperature."""
    found = False
    for name in ("config.yaml", "config/paper.yaml"):
        section = (yaml.safe_load((ROOT / name).read_text()) or {}).get("distill_mnist")
        if not section or "experiments" not in section:
            continue
        found = True
        for exp in experiment_grid(section).values():
            if exp.paper is not None and exp.maps == "target":
                assert exp.matches_paper(), (name, exp.name)
    if not found:
        pytest.skip("no distill_mnist.experiments in config.yaml or config/paper.yaml yet")


@pytest.mark.parametrize("cfg, match", [
    ({"alpha_k": 0.7, "alpha_m": 0.5, "temperature": 2}, "alpha_k \\+ alpha_m <= 1"),
    ({"alpha_k": 0.5}, "temperature"),
    ({"alpha_m": 0.5, "alpha_m_schedule": {}}, "not both"),
    ({"alpha_k": 0.5, "temperature": 2, "alpha_m_schedule": {"start": 1.0}}, "alpha_k \\+ start"),
    ({"alpha_m": 0.5, "maps": "some"}, "maps"),
    ({"alpha_m": 0.5, "paper": "ex12"}, "not a Table-1 row"),
    ({"alpha": 0.5}, "unknown key"),
])
def test_experiment_config_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        Experiment.from_config("x", cfg)


def test_settings_errors_and_schema_defaults():
    with pytest.raises(ConfigError, match="relevance"):
        resolve_settings({"relevance": "lime"})
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_settings({"epoch": 3})
    with pytest.raises(ConfigError, match="empty"):
        experiment_grid({"experiments": {}})
    schema = yaml.safe_load((ROOT / "config/schema/distill_mnist.yaml").read_text())
    props = schema["properties"]
    assert set(props) == set(DEFAULTS) | {"experiments"}  # every shared setting declares its default
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    validator.validate({"epochs": 2, "max_train": 1000, "experiments": GRID})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"experiments": {"ex1": {"alpha_k": 2}}})


# --- training ----------------------------------------------------------------------------------------
def test_map_term_changes_the_students_weights():
    torch.manual_seed(0)
    teacher, student = MLP(16, [12, 12], 4).eval(), MLP(16, [8], 4)
    x, y = torch.rand(6, 4, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        t_logits = teacher(x)
        r_t = scale_maps(relevance("rap", teacher, x, y))
    y = t_logits.argmax(1)  # the teacher is right on every sample, so the MSE covers them all

    def grads(w):
        student.zero_grad()
        from xaipipe.distill.relevance import trace_mlp, relevance_from_trace

        tr = trace_mlp(student, x)
        loss, _ = explanation_kd_loss(tr.logits, t_logits, y, w, None,
                                      scale_maps(relevance_from_trace("rap", tr, y)), r_t)
        loss.backward()
        return [p.grad.clone() for p in student.parameters()]

    g_mse = grads(LossWeights(0.0, 0.0, 1.0))
    assert all(float(g.abs().sum()) > 0 for g in g_mse[::2])       # every weight matrix gets a gradient
    g_ce = grads(LossWeights(0.0, 1.0, 0.0))
    g_mix = grads(LossWeights(0.0, 0.5, 0.5))
    for a, b, c in zip(g_mse, g_ce, g_mix):
        assert torch.allclose(c, 0.5 * a + 0.5 * b, atol=1e-6)
    # one step on the map term alone moves every weight matrix and the hidden bias (the output bias
    # only rescales RAP's map uniformly, which the min-max scaling removes)
    before = [p.detach().clone() for p in student.parameters()]
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    for p, g in zip(student.parameters(), g_mse):
        p.grad = g
    opt.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, student.parameters())]
    assert changed[:3] == [True, True, True]


def synthetic_mnist(tmp_path: Path, n_train: int = 300, n_test: int = 100) -> tuple[str, str]:
    """MNIST-format files: class c has a bright bar at rows 2c..2c+3, plus noise."""
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 10
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 * c + 4:2 * c + 7, 4:24] = 255
        return x, y.astype(np.int64)

    paths = []
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = make(n)
        p = tmp_path / f"{split}.npz"
        np.savez(p, x=x, y=y)
        paths.append(str(p))
    return paths[0], paths[1]


def tiny_teacher(tmp_path: Path, train_path: str) -> str:
    torch.manual_seed(0)
    kwargs = {"in_features": 784, "hidden": [32, 32], "n_classes": 10, "dropout": 0.2, "input_dropout": 0.0}
    m = MLP(**kwargs)
    with np.load(train_path) as z:
        x, y = torch.from_numpy(z["x"].astype(np.float32) / 255), torch.from_numpy(z["y"])
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, "mlp", kwargs, m.eval(), {"classes": [str(i) for i in range(10)]})
    return str(path)


def test_one_epoch_runs_write_outputs_and_table(tmp_path):
    train, test = synthetic_mnist(tmp_path)
    teacher = tiny_teacher(tmp_path, train)
    settings = {"epochs": 1, "batch_size": 64, "student_hidden": [16], "teacher_hidden": [32, 32],
                "max_test": 50, "eval_batch_size": 128}
    names = ["ex1", "ex7", "variational", "ex9_all_classes"]
    outs = {}
    for name in names:
        d = tmp_path / "kd" / name
        outs[name] = {"model": str(d / "model.pt"), "metrics": str(d / "metrics.json"),
                      "history": str(d / "history.csv"), "timing": str(d / "timing.json")}
        run_experiment(train, test, teacher, settings, name, GRID[name], 0, "cpu", outs[name])
        for p in outs[name].values():
            assert Path(p).is_file()
        h = pd.read_csv(outs[name]["history"])
        assert len(h) == 1 and 0 <= h["test_errors"][0] <= 50
        m = read_json(outs[name]["metrics"])
        assert m["n_test"] == 50 and m["n_train"] == 300 and m["errors"] == h["test_errors"][0]
        assert m["errors_per_10k"] == pytest.approx(m["errors"] * 200)
        # wall times live in timing.json only
        timing = read_json(outs[name]["timing"])
        assert len(timing["epoch_seconds"]) == 1 and timing["train_seconds"] >= 0 and timing["device"] == "cpu"
        assert "seconds" not in h.columns and "train_seconds" not in m
        if name != "ex1":
            assert 0 < h["train_mse"][0] < 1 and h["teacher_correct_fraction"][0] > 0.5
    assert read_json(outs["variational"]["metrics"])["published_errors"] == 140
    assert pd.read_csv(outs["variational"]["history"])["alpha_m"][0] == pytest.approx(0.5)
    # the same seed gives the same initial student and batches: ex1 is reproducible, its history and
    # metrics byte for byte (no wall times in them)
    again = {k: v.replace("/ex1/", "/ex1_again/") for k, v in outs["ex1"].items()}
    run_experiment(train, test, teacher, settings, "ex1", GRID["ex1"], 0, "cpu", again)
    assert read_json(again["metrics"])["errors"] == read_json(outs["ex1"]["metrics"])["errors"]
    for key in ("history", "metrics"):
        assert Path(again[key]).read_bytes() == Path(outs["ex1"][key]).read_bytes(), key
    # a teacher of another architecture is refused when teacher_hidden is set
    with pytest.raises(XaipipeError, match="teacher hidden layers"):
        run_experiment(train, test, teacher, {**settings, "teacher_hidden": [1200, 1200]}, "ex1", GRID["ex1"],
                       0, "cpu", again)

    table = build_table([outs[n]["metrics"] for n in names], [outs[n]["history"] for n in names],
                        str(tmp_path / "table1.csv"), str(tmp_path / "table1.md"), str(tmp_path / "errors.png"))
    assert list(table["experiment"]) == ["teacher"] + names
    assert (tmp_path / "errors.png").stat().st_size > 1000
    assert "| experiment" in (tmp_path / "table1.md").read_text()
    row = table.set_index("experiment").loc["ex7"]
    assert row["published"] == 116 and row["difference"] == pytest.approx(row["errors_per_10k"] - 116)
    assert "1 epochs on 300 training images" in row["note"]
    extra = table.set_index("experiment").loc["ex9_all_classes"]
    assert pd.isna(extra["published"]) and "all 10 classes" in extra["note"]
    assert table.set_index("experiment").loc["teacher", "published"] == 75
