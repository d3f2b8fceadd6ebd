"""AT / NST / AB transfer losses on hand values and loop references; the student-method registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from xaipipe.distill.xdistill import transfer
from xaipipe.distill.xdistill import models as M
from xaipipe.distill.xdistill.methods import METHODS, get_method
from xaipipe.distill.xdistill.transfer import ab_loss, at_loss, attention_map, nst_loss, pair_layers
from xaipipe.errors import XaipipeError
from xaipipe.losses import LossInputs
from xaipipe.losses import terms as all_terms


def test_registered_in_the_shared_loss_registry():
    terms = all_terms()
    assert {"at", "nst", "ab", "kd", "weight_l2"} <= set(terms)
    assert terms["at"] is transfer.at and terms["nst"] is transfer.nst and terms["ab"] is transfer.ab
    assert set(METHODS) == {"baseline", "kd", "at", "nst", "ab", "xdistill"}


def test_the_hint_terms_sum_the_pair_losses():
    g = torch.Generator().manual_seed(0)
    hs = [torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 5, 2, 2, generator=g)]
    ht = [torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 6, 2, 2, generator=g)]
    pairs = [(0, 0), (1, 1)]
    x = LossInputs(extra={"hints": (hs, ht, pairs)})
    want_at = (at_loss(F.relu(hs[0]), F.relu(ht[0]), 2.0) + at_loss(F.relu(hs[1]), F.relu(ht[1]), 2.0)) / 2.0
    assert torch.equal(transfer.at(x), want_at)
    assert torch.equal(transfer.nst(x, relu=False), nst_loss(hs[0], ht[0]) + nst_loss(hs[1], ht[1]))
    with pytest.raises(XaipipeError, match="'ab' needs connectors"):
        transfer.ab(x)


def test_at_on_hand_values():
    # one channel, spatial 1 x 2: Q_s = [1, 4] / sqrt(17), Q_t = [4, 1] / sqrt(17)
    fs = torch.tensor([[[[1.0, 2.0]]]])
    ft = torch.tensor([[[[2.0, 1.0]]]])
    assert at_loss(fs, ft).item() == pytest.approx(((3 / math.sqrt(17)) ** 2 * 2) / 2, rel=1e-6)  # 9/17
    # the map is the channel mean of |a|^2: channels (1, -3) and (1, 1) -> [1, 5]
    two = torch.tensor([[[[1.0, -3.0]], [[1.0, 1.0]]]])
    torch.testing.assert_close(attention_map(two), torch.tensor([[1.0, 5.0]]) / math.sqrt(26))
    # equal attention (channels may differ in number) -> 0; scale-invariant
    assert at_loss(7 * two, two).item() == pytest.approx(0.0, abs=1e-7)
    assert at_loss(two.repeat(1, 3, 1, 1), two).item() == pytest.approx(0.0, abs=1e-7)


def test_at_pools_the_larger_map_and_works_on_vectors():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)
    assert at_loss(s, t).item() == pytest.approx(at_loss(F.adaptive_avg_pool2d(s, 4), t).item(), rel=1e-6)
    s1, t1 = torch.randn(2, 3, 10), torch.randn(2, 4, 5)  # 1-D maps
    assert at_loss(s1, t1).item() == pytest.approx(at_loss(F.adaptive_avg_pool1d(s1, 5), t1).item(), rel=1e-6)
    v = torch.tensor([[1.0, 2.0]])
    w = torch.tensor([[2.0, 1.0]])
    assert at_loss(v, w).item() == pytest.approx(9 / 17, rel=1e-6)  # attention |a|^2 per unit
    with pytest.raises(XaipipeError, match="equal widths"):
        at_loss(torch.randn(2, 3), torch.randn(2, 4))


def _nst_reference(s, t):
    """MMD^2 with k(x, y) = (x.y)^2 between L2-normalised channel maps, by explicit loops."""
    total = 0.0
    for b in range(s.shape[0]):
        fs = [F.normalize(s[b, j].flatten(), dim=0) for j in range(s.shape[1])]
        ft = [F.normalize(t[b, i].flatten(), dim=0) for i in range(t.shape[1])]
        k = lambda a, c: float(torch.dot(a, c)) ** 2  # noqa: E731
        tt = sum(k(a, c) for a in ft for c in ft) / len(ft) ** 2
        ss = sum(k(a, c) for a in fs for c in fs) / len(fs) ** 2
        st = sum(k(a, c) for a in fs for c in ft) / (len(fs) * len(ft))
        total += tt + ss - 2 * st
    return total / s.shape[0]


def test_nst_matches_the_loop_reference():
    torch.manual_seed(1)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)
    assert nst_loss(s, t).item() == pytest.approx(_nst_reference(s, t), rel=1e-5)
    assert nst_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    s1, t1 = torch.randn(2, 3, 6), torch.randn(2, 2, 6)  # 1-D
    assert nst_loss(s1, t1).item() == pytest.approx(_nst_reference(s1, t1), rel=1e-5)
    with pytest.raises(XaipipeError, match="spatial axis"):
        nst_loss(torch.randn(2, 3), torch.randn(2, 3))


def test_ab_on_hand_values():
    # teacher fires (t > 0): penalise relu(m - s)^2; teacher silent: relu(m + s)^2; m = 1
    source = torch.tensor([[0.5, 2.0, -2.0, 0.0]])
    target = torch.tensor([[1.0, 3.0, -1.0, -0.5]])
    # 0.5^2 + 0 + 0 + 1^2
    assert ab_loss(source, target, margin=1.0).item() == pytest.approx(1.25)
    assert ab_loss(source, target, margin=0.0).item() == pytest.approx(0.0)
    batch = torch.cat([source, torch.zeros(1, 4)])
    # second sample: s = 0 everywhere: 1 + 1 (teacher fires) + 0 ... per neuron: on -> 1, off -> 1
    assert ab_loss(batch, torch.cat([target, target]), 1.0).item() == pytest.approx((1.25 + 4.0) / 2)


def test_pair_layers():
    assert pair_layers(2, 2, None) == [(0, 0), (1, 1)]
    assert pair_layers(5, 5, [-1]) == [(4, 4)]
    assert pair_layers(2, 5, [[1, 4]]) == [(1, 4)]
    with pytest.raises(XaipipeError, match="index pairs"):
        pair_layers(2, 3, None)
    with pytest.raises(XaipipeError, match="out of range"):
        pair_layers(2, 2, [[0, 5]])


def test_methods_compose_their_terms(torch_single_thread):
    torch.manual_seed(0)
    teacher, student = M.build_classifier("lenet5").eval(), M.build_classifier("net")
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        zt = teacher(x)
    base = get_method({"method": "baseline"})
    loss, logits, parts = base.loss(student, teacher, x, y)
    assert set(parts) == {"ce"} and loss.item() == pytest.approx(F.cross_entropy(logits, y).item())
    kd = get_method({"method": "kd"})
    loss, logits, parts = kd.loss(student, teacher, x, y)
    from xaipipe.losses.kd import kd_loss
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item() + 0.1 * kd_loss(logits, zt, 1.0).item(),
                                        rel=1e-5)
    at = get_method({"method": "at", "beta": 10.0})
    at.setup(student, teacher, x)
    loss, logits, parts = at.loss(student, teacher, x, y)
    _, hs = student.forward_features(x)
    _, ht = teacher.forward_features(x)
    want = sum(at_loss(F.relu(a), F.relu(b)) for a, b in zip(hs, ht)) / 2
    assert parts["transfer"] == pytest.approx(want.item(), rel=1e-5)
    assert loss.item() == pytest.approx(parts["ce"] + 10.0 * parts["transfer"], rel=1e-5)
    ab = get_method({"method": "ab"})
    ab.setup(student, teacher, x)
    assert [c.net[0].weight.shape[:2] for c in ab.connectors] == [(6, 6), (16, 12)]
    loss, _, parts = ab.loss(student, teacher, x, y, phase="init")
    assert set(parts) == {"transfer"} and loss.requires_grad
    with pytest.raises(XaipipeError, match="unknown parameter"):
        get_method({"method": "kd", "lam": 0.1})
    with pytest.raises(XaipipeError, match="unknown student method"):
        get_method({"method": "fitnet"})
