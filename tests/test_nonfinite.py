"""Non-finite values (issue #16): NaN or infinite inputs, losses, logits or relevance stop the stage or the
command with one message naming the file or the value, instead of a "successful" NaN result."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import random_text_cnn
from xaipipe.errors import NonFiniteError, XaipipeError, check_finite
from xaipipe.models import TextCNN, load_checkpoint, save_checkpoint
from xaipipe.train import Split, fit, set_seed, train_image_model, train_text_model

pytestmark = pytest.mark.usefixtures("torch_single_thread", "restore_torch_state")

CPU = torch.device("cpu")
VOCAB = ["<pad>", "space", "orbit", "car", "engine", "wheel", "star"]
# random labels on random words: nothing to learn, so the chance gate is off (these tests are about NaN)
CNN_CFG = {"channels": 4, "kernel_size": 2, "hidden": [], "dropout": 0.0, "epochs": 2, "batch_size": 8,
           "val_fraction": 0.25, "require_above_chance": False}


def outputs_in(folder) -> dict:
    return {k: str(folder / f) for k, f in (("model", "model.pt"), ("metrics", "metrics.json"),
                                              ("history", "history.csv"), ("plot", "history.png"))}


# --- the helper ------------------------------------------------------------------------------------------

def test_check_finite_accepts_finite_values_and_names_what_and_how_many_are_not():
    for ok in (np.arange(4), np.ones(3), torch.zeros(2, 2), [1.0, 2.0], 3.5, np.array([], dtype=float)):
        check_finite(ok, "x")
    for bad, counts in ((np.array([1.0, np.nan, np.inf, -np.inf]), "1 NaN, 2 infinite"),
                        (torch.tensor([[float("nan")] * 3]), "3 NaN, 0 infinite"), (float("inf"), "0 NaN, 1 infinite"),
                        ([0.5, float("nan")], "1 NaN, 0 infinite")):
        with pytest.raises(NonFiniteError) as info:
            check_finite(bad, "the thing", "fix it")
        msg = str(info.value)
        assert isinstance(info.value, XaipipeError) and "\n" not in msg
        assert msg.startswith("the thing") and counts in msg and msg.endswith("fix it"), msg


# --- training ---------------------------------------------------------------------------------------------

def text_files(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"tokens": list(rng.choice(VOCAB[1:], 5)), "label": i % 2} for i in range(32)]
    df = pd.DataFrame(rows)
    df.to_parquet(tmp_path / "train.parquet")
    df.head(8).to_parquet(tmp_path / "test.parquet")
    return str(tmp_path / "train.parquet"), str(tmp_path / "test.parquet")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_text_training_on_a_non_finite_embedding_stops_naming_the_embedding_file(tmp_path, value):
    train, test = text_files(tmp_path)
    vectors = np.random.default_rng(0).standard_normal((len(VOCAB), 6)).astype(np.float32)
    vectors[3, 2] = value
    vectors_file = "results/demo/embedding/vectors.npy"
    out = tmp_path / "model"
    with pytest.raises(NonFiniteError) as info:
        train_text_model(train, test, VOCAB, vectors, {"classes": ["a", "b"]}, CNN_CFG, 0, "cpu", outputs_in(out),
                         vectors_file=vectors_file)
    msg = str(info.value)
    assert vectors_file in msg and "rerun" in msg, msg
    assert not out.exists() or not any(out.iterdir())  # nothing written, not even a resume checkpoint


def test_image_training_on_non_finite_pixels_stops_naming_the_file(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (20, 4, 4)).astype(np.float32)
    x[3, 1, 1] = np.nan
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(20) % 2)
    np.savez(tmp_path / "test.npz", x=x[:6], y=np.arange(6) % 2)
    out = tmp_path / "model"
    with pytest.raises(NonFiniteError, match="train.npz"):
        train_image_model(str(tmp_path / "train.npz"), str(tmp_path / "test.npz"), {"classes": ["0", "1"]},
                          {"hidden": [4], "epochs": 1, "batch_size": 5}, 0, "cpu", outputs_in(out))
    assert not (out / "model.pt").exists()


def test_a_diverging_training_stops_after_the_epoch_and_keeps_no_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, len(VOCAB), 5).astype(np.int64) for _ in range(24)]
    split = Split(docs, np.arange(24) % 2)
    set_seed(0)
    model = random_text_cnn(len(VOCAB), 6, 2)
    cfg = {"epochs": 3, "batch_size": 8, "optimizer": "sgd", "lr": 1e30}
    with pytest.raises(NonFiniteError) as info:
        fit(model, split, split, cfg, CPU, 0, desc="demo/teacher", resume=tmp_path / "resume.pt")
    msg = str(info.value)
    assert "demo/teacher" in msg and "epoch 1" in msg and "loss" in msg and "lr" in msg, msg
    assert not (tmp_path / "resume.pt").exists()


# --- models, CLI ------------------------------------------------------------------------------------------

def saved_model(tmp_path, scale: float = 1.0, nan_embedding: bool = False):
    emb = torch.randn(len(VOCAB), 6, generator=torch.Generator().manual_seed(0))
    emb[0] = 0
    if nan_embedding:
        emb[2] = float("nan")
    torch.manual_seed(0)
    model = TextCNN(emb, n_classes=2, channels=4, kernel_size=2, hidden=[], dropout=0.0)
    with torch.no_grad():
        model.conv.weight.mul_(scale)
        model.classifier[-1].weight.mul_(scale)
    path = tmp_path / "model.pt"
    save_checkpoint(path, "text_cnn", {"n_classes": 2, "channels": 4, "kernel_size": 2, "hidden": []}, model,
                    {"vocab": VOCAB, "classes": ["sci", "autos"], "tokenizer": {}})
    return path


def test_a_model_file_with_non_finite_weights_is_refused_naming_it(tmp_path):
    path = saved_model(tmp_path, nan_embedding=True)
    with pytest.raises(NonFiniteError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and "embedding" in msg and "retrain" in msg, msg


@pytest.mark.parametrize("command", [["predict"], ["explain", "--method", "sensitivity"]])
def test_cli_refuses_non_finite_outputs_in_one_line(tmp_path, capsys, command):
    from xaipipe.cli import main

    path = saved_model(tmp_path, scale=1e30)  # finite weights whose logits overflow
    assert main([command[0], "--model", str(path), *command[1:], "space orbit car"]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err and "not finite" in err, err
    assert "nan" not in captured.out.lower()


# --- the explain and evaluate stages ----------------------------------------------------------------------

def stage_docs(model):
    ids = [np.array([1, 2, 3, 1]), np.array([4, 5, 6, 4, 5, 6]), np.array([2, 3, 1])]  # 6 only in 'b'
    preds = [int(model(torch.as_tensor(d)[None]).argmax()) for d in ids]
    return pd.DataFrame({"id": ["a", "b", "c"], "set": ["correct"] * 3, "ids": ids,
                         "tokens": [[VOCAB[i] for i in d] for d in ids], "label": preds, "pred": preds})


def test_explain_stage_refuses_non_finite_relevance_naming_method_and_document(tmp_path):
    from xaipipe.explain.stage import explain_documents

    model = random_text_cnn(len(VOCAB), 6, 2)
    docs = stage_docs(model)
    with torch.no_grad():
        model.embedding[6] = float("inf")
    with pytest.raises(NonFiniteError) as info:
        explain_documents(model, docs, VOCAB, {"method": "sensitivity"}, 0)
    msg = str(info.value)
    assert "sensitivity" in msg and "'b'" in msg, msg


def test_evaluate_stage_refuses_non_finite_relevance_and_curves():
    from xaipipe.evaluate.stage import evaluate_method

    model = random_text_cnn(len(VOCAB), 6, 2)
    docs = stage_docs(model)
    rel = docs[["id"]].assign(relevance=[list(np.linspace(1, 0, len(d))) for d in docs["ids"]],
                              target=docs["pred"])
    cfg = {"K": 3, "n_draws": 2, "bootstrap": 10, "modes": ["zero"], "distortion": False}
    evaluate_method(model, docs, rel, cfg, [1], 0)  # finite: fine
    bad = rel.copy()
    bad.at[2, "relevance"] = [0.1, float("nan"), 0.3]
    with pytest.raises(NonFiniteError, match="relevance of document 'c'"):
        evaluate_method(model, docs, bad, cfg, [1], 0)
    with torch.no_grad():
        model.classifier[-1].bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="curve"):
        evaluate_method(model, docs, rel, cfg, [1], 0)


def test_a_finite_training_writes_finite_metrics(tmp_path):
    train, test = text_files(tmp_path)
    vectors = np.random.default_rng(0).standard_normal((len(VOCAB), 6)).astype(np.float32)
    vectors[0] = 0
    out = tmp_path / "model"
    train_text_model(train, test, VOCAB, vectors, {"classes": ["a", "b"]}, CNN_CFG, 0, "cpu", outputs_in(out),
                     vectors_file="vectors.npy")
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["test_loss"])
