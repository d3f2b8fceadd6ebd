"""Encoding, batching, metrics and the training loop (xaipipe.train), on tiny synthetic tasks."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from xaipipe.errors import ConfigError
from xaipipe.models import MLP, TextCNN
from xaipipe.optim import lr_lambda
from xaipipe.train import (
    Split,
    bucket_batches,
    classification_metrics,
    encode,
    fit,
    pad_batch,
    predict,
    resolve_device,
    set_seed,
    val_split,
)

CPU = torch.device("cpu")
N_VOCAB, EMB_DIM, KEYWORD = 40, 16, 1

pytestmark = pytest.mark.usefixtures("torch_single_thread", "restore_torch_state")




# --- encoding and batching ------------------------------------------------------------------------

def test_encode_drops_oov_and_counts_docs_without_known_word():
    w2i = {"<pad>": 0, "good": 1, "words": 2}
    arrays, n_empty = encode([["good", "unknown", "words", "good"], ["unknown"], [], ["words"]], w2i)
    assert [a.tolist() for a in arrays] == [[1, 2, 1], [0], [0], [2]]
    assert all(a.dtype == np.int64 for a in arrays)
    assert n_empty == 2


def test_encode_accepts_numpy_token_arrays():
    # parquet gives token lists back as numpy object arrays
    arrays, n_empty = encode([np.array(["b", "a"], dtype=object)], {"<pad>": 0, "a": 1, "b": 2})
    assert arrays[0].tolist() == [2, 1] and n_empty == 0


def test_pad_batch_pads_and_truncates():
    seqs = [np.array([1, 2, 3, 4, 5]), np.array([6]), np.array([7, 8])]
    tokens, lengths = pad_batch(seqs)
    assert tokens.tolist() == [[1, 2, 3, 4, 5], [6, 0, 0, 0, 0], [7, 8, 0, 0, 0]]
    assert lengths.tolist() == [5, 1, 2]
    assert tokens.dtype == torch.long and lengths.dtype == torch.long
    tokens, lengths = pad_batch(seqs, max_len=3)
    assert tokens.tolist() == [[1, 2, 3], [6, 0, 0], [7, 8, 0]]
    assert lengths.tolist() == [3, 1, 2]
    tokens, lengths = pad_batch([np.array([6]), np.array([7, 8])], max_len=10)
    assert tokens.shape == (2, 2)  # padded to the batch's longest, not to max_len


@pytest.mark.parametrize("n, batch_size, factor", [(103, 10, 50), (103, 10, 2), (7, 10, 50), (64, 8, 1)])
@pytest.mark.parametrize("seeded", [False, True])
def test_bucket_batches_cover_every_index_once(n, batch_size, factor, seeded):
    lengths = np.random.default_rng(0).integers(1, 60, n)
    rng = np.random.default_rng(1) if seeded else None
    batches = bucket_batches(lengths, batch_size, rng, bucket_factor=factor)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) >= math.ceil(n / batch_size)


def test_bucket_batches_without_rng_are_sorted_by_length():
    lengths = np.random.default_rng(0).integers(1, 60, 50)
    flat = np.concatenate(bucket_batches(lengths, 8, None))
    assert np.all(np.diff(lengths[flat]) >= 0)


def test_bucket_batches_with_rng_group_similar_lengths_and_are_seeded():
    lengths = np.random.default_rng(0).integers(1, 500, 400)
    a = bucket_batches(lengths, 10, np.random.default_rng(5), bucket_factor=40)  # one pool: sorted batches
    b = bucket_batches(lengths, 10, np.random.default_rng(5), bucket_factor=40)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    spread = np.mean([np.ptp(lengths[batch]) for batch in a])
    assert spread < 50  # random batches would span ~400 tokens
    c = bucket_batches(lengths, 10, np.random.default_rng(6), bucket_factor=40)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_split_subset_and_tensor_batches():
    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    split = Split(x, np.arange(10) % 2)
    sub = split.subset(np.array([1, 3, 5]))
    assert len(sub) == 3 and torch.equal(sub.x, x[[1, 3, 5]])
    seen = []
    for (xb,), yb in split.batches(4, np.random.default_rng(0), None, CPU):
        assert xb.shape[0] == yb.shape[0] <= 4
        seen += (xb[:, 0] / 2).long().tolist()
        assert torch.equal(yb, (xb[:, 0] / 2).long() % 2)
    assert sorted(seen) == list(range(10))
    text = Split([np.array([1, 2]), np.array([3])], np.array([0, 1]))
    assert [a.tolist() for a in text.subset(np.array([1])).x] == [[3]]


# --- metrics and schedule -------------------------------------------------------------------------

def test_classification_metrics_hand_values():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2, 2])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c", "d"])
    # rows = true class, columns = predicted class
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["n_errors"] == 2 and m["n_test"] == 7
    assert m["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": pytest.approx(2 / 3), "d": None}


def test_classification_metrics_asymmetric_confusion():
    m = classification_metrics(np.array([0, 0, 0]), np.array([1, 1, 1]), ["x", "y"])
    assert m["confusion_matrix"] == [[0, 3], [0, 0]]
    assert m["per_class_accuracy"] == {"x": 0.0, "y": None}


def test_lr_lambda_warmup_then_cosine():
    f = lr_lambda(total_steps=12, warmup_steps=2, schedule="cosine")
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(7) == pytest.approx(0.5)
    assert f(12) == pytest.approx(0.0, abs=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(2, 20))
    g = lr_lambda(12, 0, "constant")
    assert {g(s) for s in range(15)} == {1.0}


def test_val_split():
    y = np.repeat([0, 1, 2], 20)
    tr, va = val_split(y, 0.25, seed=0)
    assert len(va) == 15 and len(tr) == 45 and not set(tr) & set(va)
    assert np.bincount(y[va]).tolist() == [5, 5, 5]
    tr, va = val_split(y, 0.0, seed=0)
    assert len(tr) == 60 and len(va) == 0


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    if not torch.cuda.is_available():
        assert resolve_device("auto") == CPU
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda:0")


# --- the training loop ----------------------------------------------------------------------------

def keyword_task(n: int, seed: int) -> Split:
    """Class 1 iff the document contains the KEYWORD token; lengths 3-15, other tokens random."""
    rng = np.random.default_rng(seed)
    docs, labels = [], []
    for i in range(n):
        label = i % 2
        d = rng.integers(KEYWORD + 1, N_VOCAB, int(rng.integers(3, 16)))
        if label:
            d[int(rng.integers(len(d)))] = KEYWORD
        docs.append(d.astype(np.int64))
        labels.append(label)
    return Split(docs, np.array(labels, dtype=np.int64))


def make_cnn(seed: int = 0, dropout: float = 0.0, hidden=()) -> TextCNN:
    g = torch.Generator().manual_seed(123)
    emb = torch.randn(N_VOCAB, EMB_DIM, generator=g)
    emb[0] = 0
    torch.manual_seed(seed)
    return TextCNN(emb, n_classes=2, channels=16, kernel_size=3, hidden=list(hidden), dropout=dropout)


FIT_CFG = {"epochs": 10, "batch_size": 32, "lr": 0.02, "schedule": "cosine", "warmup_epochs": 0.5}


def test_fit_learns_keyword_task():
    set_seed(0)
    # 1000 documents: with fewer, the kernel-3 CNN also memorises word pairs of the training set
    train, val = keyword_task(1000, seed=0), keyword_task(200, seed=1)
    model = make_cnn()
    t0 = time.perf_counter()
    history, best_epoch = fit(model, train, val, FIT_CFG, CPU, seed=0)
    assert time.perf_counter() - t0 < 20
    assert len(history) == FIT_CFG["epochs"]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"}
    best = max(h["val_acc"] for h in history)
    assert best >= 0.9
    assert history[best_epoch - 1]["val_acc"] == best
    # the best weights are restored
    pred, _ = predict(model, val, 64, CPU)
    assert float((pred == val.y).mean()) == pytest.approx(best)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_predict_returns_predictions_in_split_order():
    model = make_cnn().eval()
    split = keyword_task(50, seed=3)
    pred, loss = predict(model, split, batch_size=7, device=CPU)
    with torch.no_grad():
        single = [int(model(torch.from_numpy(d)[None]).argmax(1)) for d in split.x]
    assert pred.tolist() == single
    assert loss > 0


def test_fit_early_stopping_with_patience():
    # lr 0: validation accuracy never improves after epoch 1, so training stops after `patience` more
    history, best_epoch = fit(make_cnn(), keyword_task(60, 0), keyword_task(20, 1),
                              {"epochs": 10, "batch_size": 16, "lr": 0.0, "patience": 2}, CPU, seed=0)
    assert len(history) == 3 and best_epoch == 1


def test_fit_unknown_optimizer():
    with pytest.raises(ConfigError, match="unknown optimizer"):
        fit(make_cnn(), keyword_task(10, 0), keyword_task(4, 1), {"optimizer": "lbfgs"}, CPU, seed=0)


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_set_seed_makes_fits_identical():
    train, val = keyword_task(120, seed=0), keyword_task(30, seed=1)
    cfg = {"epochs": 2, "batch_size": 16, "lr": 0.01, "max_len": 10}
    runs = []
    for seed in (7, 7, 8):
        set_seed(seed)
        model = TextCNN(make_cnn().embedding, n_classes=2, channels=8, kernel_size=3, hidden=[6], dropout=0.5)
        history, _ = fit(model, train, val, cfg, CPU, seed=seed)
        runs.append((state(model), [h["train_loss"] for h in history]))
    (s1, h1), (s2, h2), (s3, _) = runs
    assert h1 == h2
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_fit_mlp_on_tensor_split():
    set_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(240, 4, 4, generator=g)
    y = (x[:, :2].mean((1, 2)) > x[:, 2:].mean((1, 2))).long().numpy()  # top half brighter than bottom
    train, val = Split(x[:200], y[:200]), Split(x[200:], y[200:])
    model = MLP(in_features=16, hidden=[16], n_classes=2)
    history, _ = fit(model, train, val, {"epochs": 15, "batch_size": 20, "lr": 0.02}, CPU, seed=0)
    assert max(h["val_acc"] for h in history) >= 0.85


def test_training_outputs_are_byte_identical_across_runs(tmp_path):
    """Issue 'reliability': same config and seed -> byte-identical metrics.json and history.csv (wall
    times live in timing.json); a different seed gives different files."""
    from xaipipe.train import _run

    train, test = keyword_task(120, seed=0), keyword_task(100, seed=1)
    cfg = {"epochs": 20, "batch_size": 16, "lr": 0.02, "val_fraction": 0.25}
    blobs = []
    for i, seed in enumerate((3, 3, 4)):
        d = tmp_path / str(i)
        d.mkdir()
        outputs = {k: str(d / f) for k, f in (("model", "model.pt"), ("metrics", "metrics.json"),
                                                ("history", "history.csv"), ("plot", "history.png"),
                                                ("timing", "timing.json"))}
        set_seed(seed)
        model = TextCNN(make_cnn().embedding, n_classes=2, channels=8, kernel_size=3, hidden=[6], dropout=0.5)
        _run(model, "text_cnn", {"n_classes": 2, "channels": 8, "kernel_size": 3, "hidden": [6]}, train, test,
             ["a", "b"], cfg, seed, CPU, outputs, {}, "det")
        assert "train_seconds" in json.loads((d / "timing.json").read_text())
        blobs.append(((d / "metrics.json").read_bytes(), (d / "history.csv").read_bytes()))
    assert blobs[0] == blobs[1]
    assert blobs[0] != blobs[2]


class Interrupt(BaseException):
    """Stands in for a kill: raised inside the loop, after some epochs' checkpoints were written."""


def _interrupt_after(monkeypatch, n_predicts: int) -> None:
    import xaipipe.train as train_mod

    real, calls = train_mod.predict, {"n": 0}

    def predict_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_predicts:
            raise Interrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "predict", predict_then_die)


@pytest.mark.parametrize("patience", [0, 2])
def test_fit_resumes_after_interruption_with_identical_result(tmp_path, monkeypatch, patience):
    """Issue 'reliability': kill mid-training, rerun -> continues after the last finished epoch and ends
    with exactly the weights and history of an uninterrupted run (dropout and shuffling included)."""
    train, val = keyword_task(120, seed=0), keyword_task(30, seed=1)
    cfg = {"epochs": 5, "batch_size": 16, "lr": 0.01 if patience == 0 else 0.0, "patience": patience}

    def fresh():
        set_seed(5)
        return TextCNN(make_cnn().embedding, n_classes=2, channels=8, kernel_size=3, hidden=[6], dropout=0.5)

    ref = fresh()
    ref_hist, ref_best = fit(ref, train, val, cfg, CPU, seed=5)

    ckpt = tmp_path / "resume.pt"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)  # dies in epoch 3's validation: epochs 1-2 are checkpointed
        with pytest.raises(Interrupt):
            fit(fresh(), train, val, cfg, CPU, seed=5, resume=ckpt)
    assert ckpt.is_file() and not list(tmp_path.glob(".*tmp*"))
    assert torch.load(ckpt, weights_only=False)["epoch"] == 2

    set_seed(5)  # a new process: seeds as at the start, then the checkpoint's states take over
    model = fresh()
    seconds: list[float] = []
    with monkeypatch.context() as m:
        _interrupt_after(m, len(ref_hist) - 2)  # only the epochs after the checkpoint may run
        hist, best = fit(model, train, val, cfg, CPU, seed=5, resume=ckpt, epoch_seconds=seconds)
    assert hist == ref_hist and best == ref_best and len(seconds) == len(hist)
    assert all(torch.equal(v, state(ref)[k]) for k, v in state(model).items())


def test_fit_ignores_a_checkpoint_of_another_configuration(tmp_path, monkeypatch, caplog):
    train, val = keyword_task(60, seed=0), keyword_task(20, seed=1)
    cfg = {"epochs": 3, "batch_size": 16, "lr": 0.01}
    ckpt = tmp_path / "resume.pt"
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(Interrupt):
            fit(make_cnn(), train, val, cfg, CPU, seed=0, resume=ckpt)
    ref_hist, _ = fit(make_cnn(), train, val, {**cfg, "lr": 0.02}, CPU, seed=0)
    with caplog.at_level("WARNING"):
        hist, _ = fit(make_cnn(), train, val, {**cfg, "lr": 0.02}, CPU, seed=0, resume=ckpt)
    assert "another configuration" in caplog.text and hist == ref_hist
    ckpt.write_bytes(b"half a file")  # cannot happen with the atomic writer, but must not crash a rerun
    with caplog.at_level("WARNING"):
        hist, _ = fit(make_cnn(), train, val, {**cfg, "lr": 0.02}, CPU, seed=0, resume=ckpt)
    assert "unreadable" in caplog.text and hist == ref_hist


def test_fit_ignores_a_checkpoint_trained_on_other_embedding_vectors(tmp_path, monkeypatch, caplog):
    """Same configuration, vocabulary and data, but a rebuilt embedding (other vectors): the checkpoint of
    the old vectors is not resumed (it used to be, and a failed run's weights came back)."""
    train, val = keyword_task(60, seed=0), keyword_task(20, seed=1)
    cfg = {"epochs": 3, "batch_size": 16, "lr": 0.01}
    ckpt = tmp_path / "resume.pt"
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(Interrupt):
            fit(make_cnn(), train, val, cfg, CPU, seed=0, resume=ckpt)
    other = make_cnn()
    with torch.no_grad():
        other.embedding[1:] *= -1.0
    with caplog.at_level("WARNING"):
        fit(other, train, val, cfg, CPU, seed=0, resume=ckpt)
    assert "another configuration" in caplog.text


def test_run_removes_the_resume_checkpoint_when_outputs_are_written(tmp_path):
    from xaipipe.train import _run

    outputs = {k: str(tmp_path / f) for k, f in (("model", "model.pt"), ("metrics", "metrics.json"),
                                                   ("history", "history.csv"), ("plot", "history.png"))}
    _run(make_cnn(), "text_cnn", {"n_classes": 2, "channels": 16, "kernel_size": 3}, keyword_task(40, 0),
         keyword_task(10, 1), ["a", "b"], {"epochs": 2, "batch_size": 16, "require_above_chance": False}, 0, CPU,
         outputs, {}, "t")
    assert (tmp_path / "model.pt").is_file() and not (tmp_path / "resume.pt").exists()


def _outputs(folder):
    return {k: str(folder / f) for k, f in (("model", "model.pt"), ("metrics", "metrics.json"),
                                              ("history", "history.csv"), ("plot", "history.png"))}


def test_a_model_at_chance_fails_and_writes_nothing(tmp_path):
    """lr 0 leaves the model at its random start: the test accuracy is not above the most frequent class,
    the job fails with one message, and no model or metrics file is written (nothing to explain)."""
    from xaipipe.errors import ModelAtChanceError
    from xaipipe.train import _run

    with pytest.raises(ModelAtChanceError, match="not above chance .* require_above_chance: false"):
        _run(make_cnn(), "text_cnn", {"n_classes": 2, "channels": 16, "kernel_size": 3}, keyword_task(60, 0),
             keyword_task(200, 1), ["a", "b"], {"epochs": 2, "batch_size": 16, "lr": 0.0}, 0, CPU,
             _outputs(tmp_path), {}, "t")
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()
    m = _run(make_cnn(), "text_cnn", {"n_classes": 2, "channels": 16, "kernel_size": 3}, keyword_task(60, 0),
             keyword_task(200, 1), ["a", "b"], {"epochs": 2, "batch_size": 16, "lr": 0.0,
                                                "require_above_chance": False}, 0, CPU, _outputs(tmp_path), {}, "t")
    assert m["chance_accuracy"] == 0.5 and m["p_chance"] > 0.01 and (tmp_path / "model.pt").is_file()
    learned = _run(make_cnn(), "text_cnn", {"n_classes": 2, "channels": 16, "kernel_size": 3}, keyword_task(120, 0),
                   keyword_task(200, 1), ["a", "b"], {"epochs": 20, "batch_size": 16, "lr": 0.02}, 0, CPU,
                   _outputs(tmp_path / "b"), {}, "t")
    assert learned["accuracy"] > 0.75 and learned["p_chance"] < 1e-6


def test_chance_level_is_the_most_frequent_training_class():
    from xaipipe.train import chance_level

    c = chance_level(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1]), 0.5)
    assert c["chance_accuracy"] == 0.1 and c["p_chance"] < 0.01  # 5 of 10 where the constant guess gets 1
    assert chance_level(np.array([0, 1]), np.array([0, 1] * 50), 0.5)["p_chance"] > 0.5


def test_min_steps_raises_the_epochs_and_holds_early_stopping(caplog):
    from xaipipe.train import training_epochs

    assert training_epochs({"epochs": 3, "batch_size": 10, "min_steps": 100}, 95) == 10  # 10 steps per epoch
    assert training_epochs({"epochs": 30, "batch_size": 10, "min_steps": 100}, 95) == 30
    assert training_epochs({"epochs": 3, "batch_size": 10}, 95) == 3
    train, val = keyword_task(64, 0), keyword_task(20, 1)
    with caplog.at_level("INFO"):
        hist, _ = fit(make_cnn(), train, val, {"epochs": 2, "batch_size": 16, "lr": 0.0, "patience": 1,
                                               "min_steps": 24}, CPU, seed=0)
    assert len(hist) == 6 and "6 epochs instead of 2" in caplog.text  # lr 0: no epoch is better, but no stop
    hist, _ = fit(make_cnn(), train, val, {"epochs": 8, "batch_size": 16, "lr": 0.0, "patience": 1}, CPU, seed=0)
    assert len(hist) == 2  # without min_steps patience 1 stops at once
