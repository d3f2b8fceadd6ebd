"""XNet (David & Liu): the drop-loss on a hand-computed example, Eq. (1) vs Eq. (2), the X-layer,
Algorithms 1-2 (drop-loss matrix and bipartite matching), data readers and auxiliary categories."""

from __future__ import annotations

import itertools
import json
import math
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from xaipipe.errors import DataUnavailableError, XaipipeError
from xaipipe.xnet import (
    DropLosses,
    XLayer,
    XNet,
    compute_droplosses,
    drop_losses,
    droploss_term,
    example_drop_losses,
    fetch_celeba,
    identity_assignment,
    load_xnet,
    match,
    save_xnet,
    xnet_objective,
)
from xaipipe.xnet.data import (
    CELEBA,
    XSplit,
    _pixel_slant,
    _pixel_thickness,
    _pixel_width,
    load_celeba,
    load_ng20,
    mnist_categories,
    read_celeba_attributes,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread", "restore_torch_state")




def ce2(z0: float, z1: float, y: int) -> float:
    """Cross-entropy of two logits, by hand: log(1 + exp(z_other - z_y))."""
    other, own = (z1, z0) if y == 0 else (z0, z1)
    return math.log1p(math.exp(other - own))


# --- the hand example ------------------------------------------------------------------------------
# k = 2 explainable neurons with h = x (fc = identity, no activation), output layer W = diag(2, 1), b = 0,
# so logits = (2 h0, h1). Three examples; categories: x1 in cat0, x2 in cat1, x3 in both.
H = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y = torch.tensor([0, 1, 0])
A = torch.tensor([[True, False], [False, True], [True, True]])


def hand_model() -> XNet:
    m = XNet(in_shape=(2,), n_neurons=2, n_classes=2, backbone="mlp", hidden=[], activation="none")
    with torch.no_grad():
        m.fc.weight.copy_(torch.eye(2))
        m.fc.bias.zero_()
        m.out.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        m.out.bias.zero_()
    return m


def hand_values() -> dict:
    # per-example losses with neuron 0 dropped (logits (0, h1)), neuron 1 dropped ((2 h0, 0)), none dropped
    drop0 = [ce2(0, 0, 0), ce2(0, 1, 1), ce2(0, 1, 0)]
    drop1 = [ce2(4, 0, 0), ce2(0, 0, 1), ce2(2, 0, 0)]
    full = [ce2(4, 0, 0), ce2(0, 1, 1), ce2(2, 1, 0)]
    m = [[(drop0[0] + drop0[2]) / 2, (drop1[0] + drop1[2]) / 2],   # category 0 = {x1, x3}
         [(drop0[1] + drop0[2]) / 2, (drop1[1] + drop1[2]) / 2]]   # category 1 = {x2, x3}
    return {"drop": [drop0, drop1], "full": full, "M": m,
            "full_cat": [(full[0] + full[2]) / 2, (full[1] + full[2]) / 2]}


def test_hand_numbers_are_what_the_comment_says():
    v = hand_values()
    assert v["M"][0][0] == pytest.approx((math.log(2) + math.log1p(math.e)) / 2)
    assert v["M"][1][1] == pytest.approx((math.log(2) + math.log1p(math.exp(-2))) / 2)


def test_example_drop_losses_match_hand_computation():
    m = hand_model()
    e = example_drop_losses(m.head_drop_each, m.hidden(H), Y)
    assert e.shape == (2, 3)
    np.testing.assert_allclose(e.detach().numpy(), hand_values()["drop"], rtol=1e-5)


def test_droploss_matrix_matches_hand_computation():
    m = hand_model()
    h = m.hidden(H)
    full = F.cross_entropy(m.head(h), Y, reduction="none")
    dl = drop_losses(m.head_drop_each, h, Y, A, full)
    v = hand_values()
    np.testing.assert_allclose(full.detach().numpy(), v["full"], rtol=1e-5)
    np.testing.assert_allclose(dl.matrix.detach().numpy(), v["M"], rtol=1e-5)
    np.testing.assert_allclose(dl.counts.numpy(), [2, 2])
    np.testing.assert_allclose(dl.full.detach().numpy(), v["full_cat"], rtol=1e-5)
    ident = torch.tensor([0, 1])
    d = [v["M"][0][0], v["M"][1][1]]
    assert float(droploss_term(dl, ident, "min").detach()) == pytest.approx(min(d), rel=1e-5)      # Eq. (2)
    assert float(droploss_term(dl, ident, "mean").detach()) == pytest.approx(sum(d) / 2, rel=1e-5)  # Eq. (1) / k
    assert float(droploss_term(dl, ident, "sum").detach()) == pytest.approx(sum(d), rel=1e-5)      # Eq. (1)
    swapped = torch.tensor([1, 0])
    assert float(droploss_term(dl, swapped, "min").detach()) == pytest.approx(min(v["M"][0][1], v["M"][1][0]), rel=1e-5)
    inc = droploss_term(dl, ident, "min", kind="increase")
    assert float(inc.detach()) == pytest.approx(min(d[0] - v["full_cat"][0], d[1] - v["full_cat"][1]), rel=1e-5)


def test_objective_is_classification_loss_minus_alpha_min():
    m = hand_model()
    v = hand_values()
    obj, cls, reg, dl, logits = xnet_objective(m, H, Y, A, 0.05, torch.tensor([0, 1]), "min")
    assert float(cls.detach()) == pytest.approx(sum(v["full"]) / 3, rel=1e-5)
    assert float(reg) == pytest.approx(min(v["M"][0][0], v["M"][1][1]), rel=1e-5)
    assert float(obj.detach()) == pytest.approx(sum(v["full"]) / 3 - 0.05 * min(v["M"][0][0], v["M"][1][1]), rel=1e-5)
    # baseline (alpha 0): objective is the plain loss, the drop-losses are measured without a graph
    obj0, _, reg0, dl0, _ = xnet_objective(m, H, Y, A, 0.0, torch.tensor([0, 1]), "min")
    assert float(obj0.detach()) == pytest.approx(float(cls.detach())) and float(reg0) == pytest.approx(float(reg))
    assert not dl0.sums.requires_grad


def test_min_gradient_flows_only_through_the_smallest_droploss_mean_through_all():
    m = hand_model()
    ident = torch.tensor([0, 1])
    grads = {}
    for red in ("min", "mean"):
        m.zero_grad()
        h = m.hidden(H)
        full = F.cross_entropy(m.head(h), Y, reduction="none")
        droploss_term(drop_losses(m.head_drop_each, h, Y, A, full), ident, red).backward()
        grads[red] = m.out.weight.grad.clone()
    # neuron 1 / category 1 has the smaller drop-loss; with neuron 1 dropped its weights get no gradient,
    # so the min term moves only the weights of neuron 0
    v = hand_values()
    assert v["M"][1][1] < v["M"][0][0]
    assert torch.all(grads["min"][:, 1] == 0) and torch.any(grads["min"][:, 0] != 0)
    assert torch.any(grads["mean"][:, 1] != 0)


def test_dropped_neuron_receives_no_gradient_from_its_drop_loss():
    torch.manual_seed(0)
    m = XNet(in_shape=(5,), n_neurons=3, n_classes=4, backbone="mlp", hidden=[6], activation="none")
    x, y = torch.randn(8, 5), torch.randint(0, 4, (8,))
    for j in range(3):
        m.zero_grad()
        F.cross_entropy(m.head(m.hidden(x), drop=j), y).backward()
        assert torch.all(m.fc.weight.grad[j] == 0) and m.fc.bias.grad[j] == 0
        assert torch.all(m.out.weight.grad[:, j] == 0)
        assert torch.any(m.fc.weight.grad[(j + 1) % 3] != 0)


def test_empty_category_is_left_out_and_no_category_gives_zero():
    m = hand_model()
    h = m.hidden(H)
    full = F.cross_entropy(m.head(h), Y, reduction="none")
    a = torch.tensor([[True, False], [False, False], [True, False]])  # category 1 absent
    dl = drop_losses(m.head_drop_each, h, Y, a, full)
    assert dl.present.tolist() == [True, False]
    v = hand_values()
    for red in ("min", "mean", "sum"):
        assert float(droploss_term(dl, torch.tensor([0, 1]), red).detach()) == pytest.approx(v["M"][0][0], rel=1e-5)
    none = drop_losses(m.head_drop_each, h, Y, torch.zeros(3, 2, dtype=torch.bool), full)
    term = droploss_term(none, torch.tensor([0, 1]), "min")
    assert float(term.detach()) == 0.0 and term.requires_grad


def test_unknown_reduction_or_kind_is_refused():
    dl = DropLosses.zeros(2, 2)
    with pytest.raises(XaipipeError, match="reduction"):
        droploss_term(dl, torch.tensor([0, 1]), "max")
    with pytest.raises(XaipipeError, match="kind"):
        droploss_term(dl, torch.tensor([0, 1]), "min", kind="ratio")


# --- the X-layer and batching -----------------------------------------------------------------------
def test_xlayer_is_identity_with_one_zeroed_diagonal_entry():
    torch.manual_seed(1)
    h = torch.randn(5, 4)
    xl = XLayer(4)
    assert torch.equal(xl(h), h)
    stacked = xl.drop_each(h)
    for j in range(4):
        lin = nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            w = torch.eye(4)
            w[j, j] = 0.0
            lin.weight.copy_(w)
        torch.testing.assert_close(xl(h, drop=j), lin(h))
        torch.testing.assert_close(stacked[j], lin(h))


def test_batched_droplosses_equal_an_explicit_loop_over_neurons_and_examples():
    torch.manual_seed(2)
    m = XNet(in_shape=(6,), n_neurons=3, n_classes=4, backbone="mlp", hidden=[8])
    x, y = torch.randn(20, 6), torch.randint(0, 4, (20,))
    a = torch.rand(20, 3) < 0.4
    h = m.hidden(x)
    full = F.cross_entropy(m.head(h), y, reduction="none")
    dl = drop_losses(m.head_drop_each, h, y, a, full)
    ref = np.zeros((3, 3))
    with torch.no_grad():
        for j in range(3):          # category
            idx = torch.nonzero(a[:, j]).squeeze(1)
            for i in range(3):      # neuron
                ref[j, i] = float(F.cross_entropy(m.head(h[idx], drop=i), y[idx])) if len(idx) else 0.0
    np.testing.assert_allclose(dl.matrix.detach().numpy(), ref, rtol=1e-5, atol=1e-6)


# --- Algorithms 1 and 2 -----------------------------------------------------------------------------
def test_algorithm1_does_not_depend_on_the_batch_size_and_equals_per_category_means():
    torch.manual_seed(3)
    m = XNet(in_shape=(6,), n_neurons=3, n_classes=2, backbone="mlp", hidden=[8])
    x, y = torch.randn(23, 6), torch.randint(0, 2, (23,))
    a = (torch.rand(23, 3) < 0.5).numpy()
    split = XSplit(x, y.numpy(), a)
    m1 = compute_droplosses(m, split.batches(4, None), 3).matrix
    m2 = compute_droplosses(m, split.batches(23, None), 3).matrix
    torch.testing.assert_close(m1, m2)
    with torch.no_grad():
        ref = np.array([[float(F.cross_entropy(m.head(m.hidden(x[a[:, j]]), drop=i), y[a[:, j]]))
                         for i in range(3)] for j in range(3)])
    np.testing.assert_allclose(m1.numpy(), ref, rtol=1e-5)


def test_matching_on_a_hand_example():
    # categories x neurons; the best total is 1 + 6 + 8 = 15 (cat0->n0, cat1->n2, cat2->n1)
    mat = np.array([[1.0, 5.0, 2.0], [4.0, 3.0, 6.0], [2.0, 8.0, 1.0]])
    assert match(mat).tolist() == [0, 2, 1]
    best = max(itertools.permutations(range(3)), key=lambda p: sum(mat[j, p[j]] for j in range(3)))
    assert list(best) == [0, 2, 1]
    # a torch matrix, and more neurons than categories
    assert match(torch.tensor([[0.1, 0.9, 0.5], [0.2, 0.95, 0.1]])).tolist() == [2, 1]
    assert identity_assignment(3).tolist() == [0, 1, 2]
    with pytest.raises(XaipipeError, match="non-finite"):
        match(np.array([[np.nan, 1.0], [1.0, 0.0]]))
    with pytest.raises(XaipipeError, match="categories <= neurons"):
        match(np.ones((3, 2)))


def test_matching_the_hand_model_keeps_the_identity():
    m = hand_model()
    split = XSplit(H, Y.numpy(), A.numpy())
    dl = compute_droplosses(m, split.batches(2, None), 2)
    v = hand_values()
    np.testing.assert_allclose(dl.matrix.numpy(), v["M"], rtol=1e-5)
    assert match(dl.matrix).tolist() == [0, 1]  # 1.003 + 0.410 > 0.073 + 0.813


# --- models -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone,in_shape,kw", [("mlp", (28, 28), {"hidden": [16]}),
                                                  ("small_cnn", (28, 28), {"channels": 4})])
def test_checkpoint_round_trip(tmp_path, backbone, in_shape, kw):
    torch.manual_seed(0)
    kwargs = {"in_shape": list(in_shape), "n_neurons": 3, "n_classes": 2, "backbone": backbone, **kw}
    m = XNet(**kwargs).eval()
    save_xnet(tmp_path / "m.pt", kwargs, m, {"categories": ["a", "b", "c"]})
    m2, meta = load_xnet(tmp_path / "m.pt")
    x = torch.rand(4, *in_shape)
    torch.testing.assert_close(m(x), m2(x))
    assert meta["categories"] == ["a", "b", "c"]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(XaipipeError, match="not a readable XNet checkpoint"):
        load_xnet(tmp_path / "bad.pt")


def test_unknown_backbone_is_refused():
    with pytest.raises(XaipipeError, match="unknown XNet backbone"):
        XNet(in_shape=(4,), n_neurons=2, n_classes=2, backbone="vgg")


# --- auxiliary categories ---------------------------------------------------------------------------
def bar(col0: int, width: int, shear: float = 0.0) -> np.ndarray:
    img = np.zeros((28, 28), dtype=np.float32)
    for r in range(4, 24):
        c = col0 + int(round(shear * (r - 14)))
        img[r, c:c + width] = 1.0
    return img


def test_pixel_attributes_on_hand_images():
    upright, thin, slanted = bar(10, 4), bar(12, 1), bar(12, 2, shear=0.5)
    x = np.stack([upright, thin, slanted])
    # upright 4 x 20 bar: 80 ink pixels, 2 x 18 = 36 interior, so 44 on the boundary
    np.testing.assert_allclose(_pixel_thickness(x)[:2], [80 / 44, 1.0])
    np.testing.assert_allclose(_pixel_width(x), [4, 1, 11])  # columns 7..17
    s = _pixel_slant(x)
    assert s[0] == pytest.approx(0.0, abs=1e-9) and s[1] == pytest.approx(0.0, abs=1e-9)
    assert s[2] == pytest.approx(0.5, abs=0.05)
    a = mnist_categories(x, np.array([8, 1, 3]), ["thick", "wide", "loop", "straight", "curved"],
                         {"thick": 1.5, "wide": 5})
    assert a.tolist() == [[True, False, True, False, False], [False, False, False, True, False],
                          [False, True, False, False, True]]
    with pytest.raises(XaipipeError, match="unknown MNIST category"):
        mnist_categories(x, np.array([8, 1, 3]), ["round"], {})


def test_ng20_categories_are_top_level_groups(tmp_path):
    rows = [("comp.graphics", ["gpu", "pixel"]), ("rec.autos", ["car", "engine"]), ("sci.space", ["orbit"]),
            ("talk.politics.guns", ["law", "gun"]), ("comp.windows.x", ["window", "pixel"]),
            ("alt.atheism", ["god"])]
    df = pd.DataFrame({"label_name": [r[0] for r in rows], "tokens": [r[1] for r in rows]})
    df.to_parquet(tmp_path / "train.parquet")
    df.to_parquet(tmp_path / "test.parquet")
    d = load_ng20(str(tmp_path / "train.parquet"), str(tmp_path / "test.parquet"), None,
                  {"task": "coarse", "categories": ["comp", "rec"], "min_df": 1})
    assert d.classes == ["alt", "comp", "rec", "sci", "talk"]
    assert d.train.y.tolist() == [1, 2, 3, 4, 1, 0]
    assert d.train.a.tolist() == [[True, False], [False, True], [False, False], [False, False], [True, False],
                                  [False, False]]
    x, _, _ = next(d.train.batches(6, None))
    assert x.shape == (6, len(d.meta["tfidf_vocabulary"])) and x.dtype == torch.float32
    with pytest.raises(XaipipeError, match="top-level"):
        load_ng20(str(tmp_path / "train.parquet"), str(tmp_path / "test.parquet"), None, {"categories": ["graphics"]})


# --- CelebA -----------------------------------------------------------------------------------------
CELEBA_ATTRS = ["5_o_Clock_Shadow", "Bald", "Bangs", "Young"]


def write_celeba(root) -> dict:
    """Tiny files in the official formats: attribute list, partition list, img_align_celeba.zip."""
    from PIL import Image

    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    vals = [[1, -1, -1, 1], [-1, 1, -1, -1], [-1, -1, 1, 1], [1, 1, -1, -1], [-1, -1, -1, 1], [-1, -1, 1, -1]]
    lines = [str(len(names)), " ".join(CELEBA_ATTRS) + " "]
    lines += [f"{n} " + " ".join(f"{v:2d}" for v in row) for n, row in zip(names, vals)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition = [0, 0, 0, 1, 2, 2]
    (root / "list_eval_partition.txt").write_text("\n".join(f"{n} {p}" for n, p in zip(names, partition)) + "\n")
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as z:
        for i, n in enumerate(names):
            img = Image.new("RGB", (178, 218), (40 * i, 100, 200))
            p = root / n
            img.save(p)
            z.write(p, f"img_align_celeba/{n}")
    manifest = {"items": {f: {"path": str(root / f)} for f in
                          ("img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt")}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return {"names": names, "vals": vals}


def test_celeba_reader_on_official_formats(tmp_path):
    write_celeba(tmp_path)
    attrs = read_celeba_attributes(tmp_path / "list_attr_celeba.txt")
    assert list(attrs.columns) == CELEBA_ATTRS and attrs.loc["000002.jpg", "Bald"]
    d = load_celeba(str(tmp_path / "manifest.json"), {"image_size": 32})
    assert d.categories == ["5_o_Clock_Shadow", "Bald", "Bangs"] and d.comparable_with_paper
    assert len(d.train) == 3 and len(d.test) == 2  # partition 1 (validation) is not used
    assert d.train.y.tolist() == [1, 0, 1] and d.test.y.tolist() == [1, 0]
    assert d.train.a.tolist() == [[True, False, False], [False, True, False], [False, False, True]]
    x, y, a = next(d.train.batches(2, None))
    assert x.shape == (2, 3, 39, 32) and y.tolist() == [1, 0]  # shorter side resized to 32
    sub = d.train.subset(2, seed=0)
    xs, ys, _ = next(sub.batches(2, None))
    assert xs.shape[0] == 2 and len(sub) == 2
    with pytest.raises(XaipipeError, match="not CelebA attributes"):
        load_celeba(str(tmp_path / "manifest.json"), {"categories": ["Beard"]})


def test_celeba_spec_and_offline_message(tmp_path, no_xaipipe_env):
    assert [f.name for f in CELEBA.files] == ["img_align_celeba.zip", "list_attr_celeba.txt",
                                              "list_eval_partition.txt"]
    assert CELEBA.file("img_align_celeba.zip").md5 == "00d2c5bc6d35e252742224ab0c1e8fcb"
    with pytest.raises(DataUnavailableError) as err:
        fetch_celeba(str(tmp_path / "raw"), offline=True)
    msg = str(err.value)
    assert "img_align_celeba.zip" in msg and "md5 00d2c5bc6d35e252742224ab0c1e8fcb" in msg and "sha256" in msg
    # files put into the raw folder by hand are found and verified (here: wrong md5 -> clear error)
    raw = tmp_path / "raw" / "celeba"
    raw.mkdir(parents=True)
    write_celeba(raw)
    with pytest.raises(DataUnavailableError, match="checksum mismatch"):
        fetch_celeba(str(tmp_path / "raw"), offline=True)
    man = fetch_celeba(str(tmp_path / "raw"), offline=True, verify=False)
    assert set(man["items"]) == {"img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt"}


def test_celeba_with_resnet18_trains(tmp_path):
    """The paper's pipeline (CelebA files -> ResNet-18 XNet -> Eq. 2) on six tiny images."""
    from xaipipe.xnet import train_xnet

    write_celeba(tmp_path)
    d = load_celeba(str(tmp_path / "manifest.json"), {"image_size": 32})
    res = train_xnet(d, {"backbone": "resnet18"}, {"epochs": 1, "batch_size": 2, "log_every": 1,
                                                   "eval_batch_size": 4},
                     {"alpha": 0.05, "reduction": "min"}, seed=0, device="cpu", desc="celeba-tiny")
    assert len(res["history"]) == 1 and np.isfinite(res["history"][0]["train_objective"])
    assert res["final"]["droplosses"].matrix.shape == (3, 3)
    assert res["final"]["pred"].shape == (2,)


# --- config schema ----------------------------------------------------------------------------------
def test_schema_fills_defaults_and_rejects_bad_values():
    from pathlib import Path

    from snakemake.utils import validate

    schema = str(Path(__file__).resolve().parents[1] / "config" / "schema" / "xnet.yaml")
    cfg = {"datasets": ["mnist", "celeba"], "variants": {"baseline": {}, "xnet": {"alpha": 0.05}}}
    validate(cfg, schema, set_default=True)
    assert cfg["variants"]["xnet"] == {"alpha": 0.05, "reduction": "min", "matching": "none", "kind": "loss"}
    assert cfg["mnist"]["data"]["categories"] == ["loop", "straight", "curved"]
    assert cfg["mnist"]["training"]["lr"] == 0.1 and cfg["mnist"]["training"]["epochs"] == 8
    assert cfg["celeba"]["model"]["backbone"] == "resnet18"
    assert cfg["celeba"]["data"]["categories"] == ["5_o_Clock_Shadow", "Bald", "Bangs"]
    for bad in ({"variants": {"x": {"alpha": -1}}}, {"variants": {"x": {"reduction": "max"}}},
                {"datasets": ["imagenet"]}, {"mnist": {"data": {"categories": ["round"]}}},
                {"mnist": {"training": {"lr_gamma": 2}}}, {"bogus": 1}):
        with pytest.raises(Exception):
            validate(bad, schema, set_default=True)
