"""Feedback distillation and self-feedback fine-tuning (xaipipe.distill.feedback*, report 7.1, 7.2, 8)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.nn import functional as F

from conftest import random_text_cnn
from xaipipe.distill.feedback import (
    SelfRelevance,
    TeacherRelevance,
    batch_relevance,
    build_explainer,
    feedback_batch,
    finetune,
    has_dropout,
    relevance_stage,
    top_k_mask,
    variant_stage,
)
from xaipipe.distill.feedback_config import (
    DATASET_DEFAULTS,
    PUBLISHED,
    VARIANT_DEFAULTS,
    FeedbackVariant,
    check_section,
    relevance_key,
    relevance_spec,
    selected_variants,
)
from xaipipe.distill.feedback_report import table_stage
from xaipipe.errors import ConfigError, XaipipeError
from xaipipe.explain import get_explainer
from xaipipe.models import TextCNN, load_checkpoint
from xaipipe.train import Split, pad_batch

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
N_VOCAB, EMB_DIM = 30, 6

pytestmark = pytest.mark.usefixtures("torch_single_thread", "restore_torch_state")




def _docs(n=10, lo=2, hi=12, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, N_VOCAB, size=int(rng.integers(lo, hi + 1))) for _ in range(n)]


def _reference_rows(tokens, lengths, important, mode, copies, masked):
    """Loop reference of a forced batch: copies rows per document, the first `masked` with words zeroed."""
    rows = []
    for b in range(tokens.shape[0]):
        n = int(lengths[b])
        for c in range(copies):
            row = tokens[b].clone()
            if c < masked:
                for j in range(n):
                    keep = bool(important[b, j])
                    if (mode == "positive" and not keep) or (mode == "negative" and keep):
                        row[j] = 0
            rows.append(row)
    return torch.stack(rows)


# --- important words and forced batches ----------------------------------------------------------------

def test_top_k_mask_hand_example():
    rel = torch.tensor([[0.1, 0.9, -0.5, 0.3, 7.0], [2.0, 2.0, 1.0, 0.0, 0.0], [5.0, 1.0, 0.0, 0.0, 0.0]])
    lengths = torch.tensor([4, 3, 2])  # row 0: position 4 is padding (its 7.0 must not count)
    mask = top_k_mask(rel, lengths, 2)
    assert mask.tolist() == [[False, True, False, True, False],
                             [True, True, False, False, False],   # tie 2.0 / 2.0, both taken
                             [True, True, False, False, False]]   # k >= length: every real word
    # NaN relevance never counts as important; ties go to the earlier position
    rel = torch.tensor([[float("nan"), 1.0, 1.0, 0.5]])
    assert top_k_mask(rel, torch.tensor([4]), 1).tolist() == [[False, True, False, False]]


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("copies,masked", [(8, 5), (1, 1), (3, 0), (4, 4)])
def test_feedback_batch_matches_loop_reference(mode, copies, masked):
    docs = _docs(6)
    tokens, lengths = pad_batch(docs)
    rel = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(1))
    important = top_k_mask(rel, lengths, 3)
    y = torch.arange(6) % 3
    fb = feedback_batch(tokens, lengths, y, important, mode, copies, masked)
    assert torch.equal(fb.tokens, _reference_rows(tokens, lengths, important, mode, copies, masked))
    assert fb.tokens.shape[0] == 6 * copies
    assert torch.equal(fb.lengths, lengths.repeat_interleave(copies))
    assert torch.equal(fb.labels, y.repeat_interleave(copies))
    for b in range(6):
        rows = fb.tokens[b * copies:(b + 1) * copies]
        flags = fb.masked_rows[b * copies:(b + 1) * copies]
        assert int(flags.sum()) == masked
        n = int(lengths[b])
        imp = important[b, :n]
        for row, flag in zip(rows, flags):
            real = row[:n]
            if not flag:  # unchanged copy
                assert torch.equal(row, tokens[b])
            elif mode == "positive":  # important words never masked, every other word masked
                assert torch.equal(real[imp], tokens[b, :n][imp]) and (real[imp] != 0).all()
                assert (real[~imp] == 0).all()
            else:  # exactly the important words masked
                assert (real[imp] == 0).all()
                assert torch.equal(real[~imp], tokens[b, :n][~imp])
            assert (row[n:] == 0).all()  # padding stays padding


def test_feedback_batch_rejects_bad_arguments():
    tokens, lengths = pad_batch(_docs(2))
    imp = torch.zeros_like(tokens, dtype=torch.bool)
    with pytest.raises(XaipipeError, match="masked = 3"):
        feedback_batch(tokens, lengths, torch.zeros(2, dtype=torch.long), imp, "positive", 2, 3)
    with pytest.raises(XaipipeError, match="positive or negative"):
        feedback_batch(tokens, lengths, torch.zeros(2, dtype=torch.long), imp, "both", 2, 1)


def test_compact_batch_has_the_loss_and_gradient_of_the_literal_batch():
    model = random_text_cnn(N_VOCAB, EMB_DIM, 3, hidden=(5,))
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    assert not has_dropout(model)
    model.train()
    tokens, lengths = pad_batch(_docs(5))
    y = torch.tensor([0, 1, 2, 0, 1])
    important = top_k_mask(torch.randn(tokens.shape, generator=torch.Generator().manual_seed(2)), lengths, 2)
    grads = []
    for compact in (False, True):
        fb = feedback_batch(tokens, lengths, y, important, "positive", 8, 5, compact=compact)
        assert fb.tokens.shape[0] == 5 * (2 if compact else 8)
        loss = (F.cross_entropy(model(fb.tokens, fb.lengths), fb.labels, reduction="none") * fb.weights).sum() \
            / fb.weights.sum()
        model.zero_grad()
        loss.backward()
        grads.append((float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.allclose(a, b, atol=1e-6)


# --- relevance --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,params", [("lrp_epsilon", {}), ("lrp_zplus", {}), ("greedy", {"k": 2})])
def test_batch_relevance_equals_the_explainer_per_document(method, params):
    model = random_text_cnn(N_VOCAB, EMB_DIM, 3, hidden=(5,))
    docs = _docs(5, lo=1, hi=9, seed=3)
    tokens, lengths = pad_batch(docs)
    target = torch.tensor([0, 1, 2, 1, 0])
    explainer = get_explainer(method, model, **params)
    model.train()
    rel = batch_relevance(explainer, tokens, lengths, target)
    assert model.training  # mode restored
    for b, d in enumerate(docs):
        ref = get_explainer(method, model, **params).attribute([d], [int(target[b])])[0].relevance
        assert np.allclose(rel[b, :len(d)].numpy(), ref, atol=1e-6), b
        assert torch.isinf(rel[b, len(d):]).all()


def test_self_relevance_is_recomputed_on_the_current_weights():
    model = random_text_cnn(N_VOCAB, EMB_DIM, 3, hidden=(5,))
    tokens, lengths = pad_batch(_docs(4, lo=5, hi=9, seed=4))
    y = torch.tensor([0, 1, 2, 0])
    src = SelfRelevance(build_explainer(model, {"method": "lrp_epsilon"}, [], 0), target="label")
    r1 = src(np.arange(4), tokens, lengths, y)
    ref = batch_relevance(get_explainer("lrp_epsilon", model), tokens, lengths, y)
    assert torch.equal(r1, ref)
    with torch.no_grad():
        model.conv.weight.add_(torch.randn(model.conv.weight.shape, generator=torch.Generator().manual_seed(5)))
    r2 = src(np.arange(4), tokens, lengths, y)
    assert src.calls == 2
    assert not torch.allclose(r1[torch.isfinite(r1)], r2[torch.isfinite(r2)])
    assert torch.equal(r2, batch_relevance(get_explainer("lrp_epsilon", model), tokens, lengths, y))


# --- the fine-tuning loop --------------------------------------------------------------------------------

def _tiny_split(n=24, seed=0):
    docs = _docs(n, lo=3, hi=10, seed=seed)
    return Split(docs, (np.arange(n) % 3).astype(np.int64))


def _capture_training_inputs(model):
    seen = []
    model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()) if mod.training else None)
    return seen


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_finetune_forced_batches_follow_the_teacher_ranking(mode):
    """Teacher relevance = -position, so the important words are the first k of every document."""
    model = random_text_cnn(N_VOCAB, EMB_DIM, 3)
    train, test = _tiny_split(), _tiny_split(9, seed=1)
    rel = TeacherRelevance([-np.arange(len(d), dtype=float) for d in train.x])
    v = FeedbackVariant.from_config("v", {"mode": mode, "copies": 8, "masked": 5, "k": 2, "epochs": 2,
                                          "batch_size": 5, "lr": 1e-3})
    seen = _capture_training_inputs(model)
    timing = {}
    hist = finetune(model, train, test, v, rel, CPU, seed=0, eval_train=True, compact=False, timing=timing)
    assert [h["epoch"] for h in hist] == [0, 1, 2] and [h["forced"] for h in hist] == [False, True, False]
    # wall times go to timing, not into the history: the relevance of the forced epoch only
    assert not any("seconds" in k for h in hist for k in h)
    assert len(timing["epoch_seconds"]) == 2 and all(t >= 0 for t in timing["epoch_seconds"])
    assert timing["relevance_epoch_seconds"][0] > 0 and timing["relevance_epoch_seconds"][1] == 0
    assert hist[1]["rows"] == 8 * len(train) and hist[2]["rows"] == len(train)
    n_batches = math.ceil(len(train) / 5)
    forced_batches, plain_batches = seen[:n_batches], seen[n_batches:]
    assert sum(t.shape[0] for t in plain_batches) == len(train)
    for t in forced_batches:
        assert t.shape[0] % 8 == 0
        for g in range(t.shape[0] // 8):
            rows = t[g * 8:(g + 1) * 8]
            n = int((rows[5] != 0).sum())  # unchanged copies: every real word is non-zero (ids >= 1)
            assert all(int((r != 0).sum()) == n for r in rows[5:])
            for r in rows[:5]:
                if mode == "positive":  # only the first 2 words survive
                    assert (r[:min(2, n)] != 0).all() and (r[2:] == 0).all()
                else:  # exactly the first 2 words are zeroed
                    assert (r[:min(2, n)] == 0).all() and torch.equal(r[2:n], rows[5][2:n])
    assert 0 <= hist[1]["masked_acc"] <= 1 and math.isnan(hist[2]["masked_acc"])


def test_self_feedback_explains_every_forced_batch_with_the_latest_weights():
    model = random_text_cnn(N_VOCAB, EMB_DIM, 3, hidden=(4,))
    train, test = _tiny_split(), _tiny_split(6, seed=1)
    src = SelfRelevance(build_explainer(model, {"method": "lrp_epsilon"}, [], 0))
    weights_at_call = []
    inner = src.__call__

    def spy(*args):
        weights_at_call.append(model.conv.weight.detach().clone())
        return inner(*args)

    v = FeedbackVariant.from_config("s", {"mode": "negative", "source": "self", "copies": 1, "masked": 1, "k": 3,
                                          "schedule": "alternate", "epochs": 3, "batch_size": 8, "lr": 1e-2})
    finetune(model, train, test, v, spy, CPU, eval_train=False)
    assert len(weights_at_call) == 2 * math.ceil(len(train) / 8)  # forced epochs 1 and 3, every batch
    for a, b in zip(weights_at_call, weights_at_call[1:]):
        assert not torch.equal(a, b)  # a gradient step happened between two relevance computations


def test_finetune_refuses_models_without_a_zero_padding_vector():
    emb = torch.randn(N_VOCAB, EMB_DIM)
    model = TextCNN(emb, 3, channels=4, kernel_size=3, hidden=[])
    v = FeedbackVariant.from_config("v", {"epochs": 1})
    with pytest.raises(XaipipeError, match="zero vector"):
        finetune(model, _tiny_split(), _tiny_split(), v, TeacherRelevance([]), CPU)


# --- configuration ---------------------------------------------------------------------------------------

def test_every_variant_and_dataset_key_has_a_declared_default():
    """The library reads its defaults from the schema (xaipipe.schema): a key declared without one would
    leave library callers without a value."""
    schema = yaml.safe_load((ROOT / "config" / "schema" / "distill_feedback.yaml").read_text())
    block = schema["properties"]["datasets"]["additionalProperties"]
    variant = block["properties"]["variants"]["additionalProperties"]
    assert set(variant["properties"]) == set(VARIANT_DEFAULTS)
    assert set(block["properties"]) == set(DATASET_DEFAULTS)


def test_schema_accepts_the_report_variants_and_rejects_wrong_values():
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load((ROOT / "config" / "schema" / "distill_feedback.yaml").read_text())
    ok = {"datasets": {"agnews": {"max_train_docs": 100, "variants": {
        "pos": {"mode": "positive", "copies": 8, "masked": 5, "k": 6, "paper": "agnews_positive_8x5_alternate"},
        "self_neg": {"mode": "negative", "source": "self", "copies": 1, "masked": 1, "k": 3,
                     "relevance": {"method": "lrp_epsilon", "epsilon": 0.1}, "schedule": "forced", "lr": 1e-5}}}}}
    jsonschema.validate(ok, schema)
    for bad in ({"datasets": {"mnist": {}}}, {"datasets": {"agnews": {"variants": {"v": {"mode": "both"}}}}},
                {"datasets": {"agnews": {"variants": {"v": {"copies": 0}}}}},
                {"datasets": {"agnews": {"variants": {"relevance": {}}}}},
                {"datasets": {"agnews": {"variants": {"v": {"kk": 1}}}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_variant_defaults_and_errors():
    models = {"teacher": {"max_len": 80}, "student": {"max_len": 60}}
    v = FeedbackVariant.from_config("pos", {"mode": "positive"}, models)
    assert (v.model, v.copies, v.masked, v.k, v.max_len, v.schedule) == ("student", 8, 5, 6, 60, "alternate")
    s = FeedbackVariant.from_config("s", {"source": "self"}, models)
    assert (s.model, s.max_len) == ("teacher", 80)
    assert [v.forced(e) for e in (1, 2, 3)] == [True, False, True]
    assert FeedbackVariant.from_config("f", {"schedule": "forced"}).forced(2)
    assert not FeedbackVariant.from_config("u", {"schedule": "unforced"}).forced(1)
    for cfg, msg in (({"masked": 9}, "between 0 and copies"), ({"kk": 1}, "unknown key"),
                     ({"paper": "nope"}, "not a published experiment"), ({"mode": "x"}, "mode"),
                     ({"relevance": "lrp"}, "relevance must be a mapping"), ({"model": "tiny"}, "needs model 'tiny'")):
        with pytest.raises(ConfigError, match=msg):
            FeedbackVariant.from_config("v", cfg, models)
    with pytest.raises(ConfigError, match="reserved"):
        FeedbackVariant.from_config("relevance", {}, models)


def test_relevance_files_are_shared_by_variants_with_the_same_relevance_settings():
    models = {"teacher": {"max_len": 80}, "student": {"max_len": 80}}
    block = {"max_train_docs": 500}
    a = FeedbackVariant.from_config("a", {"mode": "positive", "k": 6, "copies": 8}, models)
    b = FeedbackVariant.from_config("b", {"mode": "negative", "k": 3, "copies": 1, "masked": 1, "lr": 1}, models)
    c = FeedbackVariant.from_config("c", {"relevance": {"method": "lrp_epsilon", "epsilon": 0.1}}, models)
    d = FeedbackVariant.from_config("d", {"max_len": 40}, models)
    e = FeedbackVariant.from_config("e", {"max_train_docs": 100}, models)
    keys = [relevance_key(relevance_spec(x, block, 0)) for x in (a, b, c, d, e)]
    assert keys[0] == keys[1] and len(set(keys)) == 4 and keys[0].startswith("lrp_epsilon_")


def test_selected_variants_and_section_checks():
    cfg = {"datasets": ["agnews"], "agnews": {"models": {"teacher": {}, "student": {}}},
           "distill_feedback": {"datasets": {"agnews": {"run": ["b"], "variants": {"a": {}, "b": {"k": 2}}}}}}
    assert list(selected_variants(cfg["distill_feedback"], "agnews", cfg["agnews"]["models"])) == ["b"]
    check_section(cfg)
    cfg["distill_feedback"]["datasets"]["agnews"]["run"] = ["zz"]
    with pytest.raises(ConfigError, match="run names zz"):
        check_section(cfg)
    cfg["distill_feedback"]["datasets"]["agnews"]["run"] = None
    cfg["distill_feedback"]["datasets"]["agnews"]["variants"]["a"] = {"relevance": {"method": "nope"}}
    with pytest.raises(ConfigError, match="unknown relevance method"):
        check_section(cfg)
    cfg["distill_feedback"]["datasets"]["agnews"]["variants"]["a"] = {"paper": "ng20_positive_8x5_alternate"}
    with pytest.raises(ConfigError, match="experiment on ng20"):
        check_section(cfg)
    assert all(p["start"] < 1 and p["accuracy"] < 1 for p in PUBLISHED.values())


# --- end to end on a small synthetic corpus ---------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Planted-keyword documents, a random embedding, a teacher (with dropout) and a student (without)."""
    from xaipipe.data.planted import generate
    from xaipipe.train import train_text_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("feedback")
    gen = generate(n_train=120, n_test=45, n_classes=3, background_size=40, keywords_per_class=3,
                   keywords_per_doc=3, n_distractors=3, min_len=6, max_len=16, seed=0)
    for split in ("train", "test"):
        df = pd.DataFrame({k: gen[split][k] for k in ("id", "tokens", "label")})
        df.to_parquet(root / f"{split}.parquet")
    vocab = ["<pad>"] + sorted({t for doc in gen["train"]["tokens"] for t in doc})
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(vocab), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[0] = 0.0
    stats = {"classes": gen["classes"], "dataset": "planted"}
    base = {"kernel_size": 3, "epochs": 5, "batch_size": 16, "lr": 0.03, "val_fraction": 0.0, "max_len": 12}
    for name, cfg in (("teacher", {"channels": 16, "hidden": [8], "dropout": 0.5}),
                      ("student", {"channels": 2, "hidden": [], "dropout": 0.0, "epochs": 20})):
        out = {k: str(root / "models" / name / f) for k, f in
               (("model", "model.pt"), ("metrics", "metrics.json"), ("history", "history.csv"), ("plot", "h.png"))}
        train_text_model(str(root / "train.parquet"), str(root / "test.parquet"), vocab, vectors, stats,
                         {**base, **cfg}, 0, "cpu", out, name)
    return root, stats


def test_end_to_end_writes_every_output(corpus):
    root, stats = corpus
    models = {"teacher": {"max_len": 12}, "student": {"max_len": 12}}
    block = {**DATASET_DEFAULTS, "max_train_docs": 60}
    variants = {
        "pos_8x5_alt": {"mode": "positive", "k": 3, "epochs": 2, "batch_size": 16, "lr": 1e-3,
                        "paper": "ng20_positive_8x5_alternate"},
        "neg_single_forced": {"mode": "negative", "copies": 1, "masked": 1, "k": 2, "epochs": 1,
                              "schedule": "forced", "batch_size": 16, "lr": 1e-3},
        "self_neg": {"mode": "negative", "source": "self", "copies": 1, "masked": 1, "k": 2,
                     "schedule": "forced", "epochs": 2, "batch_size": 16, "lr": 1e-4},
        "control": {"schedule": "unforced", "epochs": 1, "lr": 1e-3},
    }
    sel = selected_variants({"datasets": {"planted": {"variants": variants}}}, "planted", models)
    spec = relevance_spec(sel["pos_8x5_alt"], block, 0)
    assert relevance_key(spec) == relevance_key(relevance_spec(sel["neg_single_forced"], block, 0))
    fb = root / "distill" / "feedback"
    rel_file = fb / "relevance" / "teacher" / f"{relevance_key(spec)}.parquet"
    info = relevance_stage(str(root / "models/teacher/model.pt"), str(root / "train.parquet"), spec, "cpu",
                           str(rel_file), str(rel_file.with_suffix(".json")))
    rel = pd.read_parquet(rel_file)
    assert info["n_docs"] == len(rel) == 60 and (rel["n_words"] <= 12).all()
    assert [len(r) for r in rel["relevance"]] == list(rel["n_words"])
    # stored relevance = the LRP explainer on the truncated document, for the teacher's prediction
    teacher, meta = load_checkpoint(root / "models/teacher/model.pt")
    w2i = {w: i for i, w in enumerate(meta["vocab"])}
    train_df = pd.read_parquet(root / "train.parquet").set_index("id")
    for r in rel.head(3).itertuples():
        ids = np.array([w2i[t] for t in train_df.loc[r.id, "tokens"] if t in w2i])[:12]
        ref = get_explainer("lrp_epsilon", teacher).attribute([ids], [int(r.pred)])[0].relevance
        assert np.allclose(r.relevance, ref, atol=1e-5) and r.target == r.pred

    outs = {}
    for name, v in sel.items():
        out = {k: str(fb / name / f) for k, f in
               (("model", "model.pt"), ("metrics", "metrics.json"), ("history", "history.csv"), ("curve", "curve.png"),
                ("timing", "timing.json"))}
        rel_path = str(rel_file) if v.source == "teacher" else None
        m = variant_stage(str(root / f"models/{v.model}/model.pt"), str(root / "train.parquet"),
                          str(root / "test.parquet"), v, block, stats, 0, "cpu", out, rel_path, f"planted/{name}")
        outs[name] = out
        hist = pd.read_csv(out["history"])
        # the wall times are in timing.json only: history.csv and metrics.json are byte-identical between runs
        timing = json.loads(Path(out["timing"]).read_text())
        assert len(timing["epoch_seconds"]) == len(timing["relevance_epoch_seconds"]) == v.epochs
        assert timing["train_seconds"] >= 0 and timing["relevance_seconds"] >= 0 and timing["device"] == "cpu"
        assert not [c for c in hist.columns if "seconds" in c] and not [k for k in m if "seconds" in k]
        assert list(hist["epoch"]) == list(range(v.epochs + 1))
        assert list(hist["forced"]) == [False] + [v.forced(e) for e in range(1, v.epochs + 1)]
        assert list(hist["rows"].iloc[1:]) == [60 * (v.copies if f else 1) for f in hist["forced"].iloc[1:]]
        vanilla = json.loads((root / f"models/{v.model}/metrics.json").read_text())["accuracy"]
        assert m["start_accuracy"] == pytest.approx(vanilla)  # epoch 0 = the vanilla model, same test set
        assert m["accuracy"] == pytest.approx(hist["test_acc"].iloc[-1], abs=1e-5)
        assert Path(out["curve"]).stat().st_size > 0
        model, meta2 = load_checkpoint(out["model"])
        assert meta2["feedback"]["name"] == name
    m = json.loads(Path(outs["self_neg"]["metrics"]).read_text())
    assert m["self_relevance_batches"] == 2 * math.ceil(60 / 16) and m["compact_batches"] is False
    again = {k: p.replace("neg_single_forced", "neg_single_forced_again") for k, p in outs["neg_single_forced"].items()}
    variant_stage(str(root / "models/student/model.pt"), str(root / "train.parquet"), str(root / "test.parquet"),
                  sel["neg_single_forced"], block, stats, 0, "cpu", again, str(rel_file), "planted/again")
    for key in ("history", "metrics"):
        assert Path(again[key]).read_bytes() == Path(outs["neg_single_forced"][key]).read_bytes(), key
    assert json.loads(Path(outs["pos_8x5_alt"]["metrics"]).read_text())["compact_batches"] is True

    table = table_stage("planted", {n: o["metrics"] for n, o in outs.items()},
                        {n: o["history"] for n, o in outs.items()},
                        {m: str(root / f"models/{m}/metrics.json") for m in ("student", "teacher")},
                        str(fb / "table.csv"), str(fb / "table.md"), str(fb / "curves.png"))
    assert list(table["variant"]) == ["vanilla student", "vanilla teacher", *variants]
    row = table.set_index("variant").loc["pos_8x5_alt"]
    assert not [c for c in table.columns if "seconds" in c]  # wall times only in timing.json
    assert json.loads(Path(outs["pos_8x5_alt"]["timing"]).read_text())["train_seconds"] >= 0
    assert row["published_accuracy"] == 0.5941
    assert row["difference"] == pytest.approx(row["accuracy"] - 0.5941, abs=1e-4)
    assert pd.read_csv(fb / "table.csv").shape[0] == 6
    assert "pos_8x5_alt" in (fb / "table.md").read_text() and (fb / "curves.png").stat().st_size > 0
    assert not list(fb.rglob("*.tmp*"))


# --- Snakemake wiring (once the rules file is included by the Snakefile) ----------------------------------

@pytest.mark.slow
def _rules_included() -> bool:
    files = [ROOT / "Snakefile", *(ROOT / "rules").glob("*.smk")]
    return any('include: "' in f.read_text() and 'distill_feedback.smk"' in f.read_text()
               for f in files if f.name != "distill_feedback.smk")


@pytest.mark.skipif(not _rules_included(), reason="rules/distill_feedback.smk is not included by the workflow yet")
def test_dry_run_plans_one_relevance_job_per_shared_setting(tmp_path):
    variants = {"a": {"mode": "positive"}, "b": {"mode": "negative"}, "s": {"source": "self", "k": 3}}
    overlay = {"datasets": ["agnews"],
               "distill_feedback": {"datasets": {"agnews": {"run": ["a", "b", "s"], "variants": variants}}}}
    ov = tmp_path / "ov.yaml"
    ov.write_text(yaml.safe_dump(overlay))
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "-n", "--configfile", str(ROOT / "config" / "tiny.yaml"), str(ov)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    from test_workflow import job_counts

    counts = job_counts(out)
    assert counts.get("feedback_relevance") == 1 and counts.get("distill_feedback") == 3, counts
    assert counts.get("distill_feedback_table") == 1, counts
