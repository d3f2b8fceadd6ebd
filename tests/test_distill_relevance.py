"""Differentiable relevance maps of MLPs (xaipipe.distill.relevance): RAP, LRP z+ and gradient x input
against a hand-computed 2-layer example, an explicit per-unit loop reference (numpy, float64), Zennit
(z+) and autograd (gradient x input); double backpropagation checked with gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xaipipe.distill.relevance import (RELEVANCE, all_classes, relevance, relevance_from_trace, safe_divide,
                                       scale_maps, trace_mlp)
from xaipipe.errors import XaipipeError

pytestmark = pytest.mark.usefixtures("torch_single_thread")


# --- the hand-computed example -----------------------------------------------------------------------
def hand_net(dtype=torch.float64) -> nn.Sequential:
    """x (2) -> Linear W1 = [[1, 1], [2, -1]], b1 = 0 -> ReLU -> Linear W2 = [[2, -1], [0.5, 1]],
    b2 = [1, 0]. At x = (2, 1): hidden a = (3, 3), logits (4, 4.5)."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)).to(dtype)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1.0], [2.0, -1.0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[2.0, -1.0], [0.5, 1.0]]))
        net[2].bias.copy_(torch.tensor([1.0, 0.0]))
    return net


X_HAND = torch.tensor([[2.0, 1.0]], dtype=torch.float64)


def test_rap_hand_computed():
    # Output layer, target 0: contributions a*w = (6, -3); Pos = 6, Neg = -3, Pos + Neg = 3.
    # Bias 1 split: b*Pos/(Pos+Neg) = 2 onto the positive term, b*Neg/(Pos+Neg) = -1 onto the negative
    # one -> r = (8, -4), sum 4 (the logit). Relative: |r| * 4 / 12 = (8/3, 4/3).
    # Input layer, unit 0 (R = 8/3): contributions (2, 1), Z+ = 3, Z- = 0 -> x0: 8/3*2/3, x1: 8/3*1/3.
    # Unit 1 (R = 4/3): contributions (4, -1), Z+ = 4, Z- = 1 -> x0 gets the full R (4/3) and x1 gets
    # |−1| * R/(Z+ + Z-) = 4/15. Sum C = 28/9 + 8/9 + 4/15 = 64/15, excess 4/15 over the 4 = 60/15,
    # shifted evenly off the 2 non-zero inputs: (28/9 - 2/15, 8/9 + 4/15 - 2/15) = (134/45, 46/45).
    r = relevance("rap", hand_net(), X_HAND, torch.tensor([0]))
    assert r.shape == (1, 1, 2)
    assert torch.allclose(r[0, 0], torch.tensor([134 / 45, 46 / 45], dtype=torch.float64))
    assert float(r.detach().sum()) == pytest.approx(4.0)  # conservation: the target logit


def test_zplus_and_gradient_x_input_hand_computed():
    net = hand_net()
    # z+: R_out = logit 4 -> hidden: positive contributions (6, 0) -> (4, 0);
    # unit 0 to the inputs by (2, 1)/3 -> (8/3, 4/3).
    r = relevance("lrp_zplus", net, X_HAND, torch.tensor([0]))
    assert torch.allclose(r[0, 0], torch.tensor([8 / 3, 4 / 3], dtype=torch.float64))
    # gradient of logit 0: W2[0] @ diag(1, 1) @ W1 = (2 - 2, 2 + 1) = (0, 3); times x = (0, 3)
    g = relevance("gradient_x_input", net, X_HAND, torch.tensor([0]))
    assert torch.allclose(g[0, 0], torch.tensor([0.0, 3.0], dtype=torch.float64))
    # class 1: W2[1] = (0.5, 1): z+ gives 4.5 * (1.5, 3)/4.5 at the hidden layer -> (1.5, 3); unit 0
    # (2, 1)/3 -> (1, 0.5); unit 1 positive contribution only x0 (4) -> (3, 0); total (4, 0.5)
    r1 = relevance("lrp_zplus", net, X_HAND, torch.tensor([1]))
    assert torch.allclose(r1[0, 0], torch.tensor([4.0, 0.5], dtype=torch.float64))


# --- loop reference of RAP ---------------------------------------------------------------------------
def rap_loop(weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray, t: int) -> np.ndarray:
    """RAP for one sample and target, one unit at a time (see the module docstring's formulas)."""
    acts = [x]
    for w, b in zip(weights[:-1], biases[:-1]):
        acts.append(np.maximum(w @ acts[-1] + b, 0.0))
    a, w, b = acts[-1], weights[-1][t], biases[-1][t]
    q = a * w
    pos = sum(q[j] for j in range(len(a)) if q[j] > 0)
    neg = sum(q[j] for j in range(len(a)) if q[j] < 0)
    z_pp = sum(q[j] for j in range(len(a)) if a[j] > 0 and w[j] > 0)
    z_pn = sum(q[j] for j in range(len(a)) if a[j] > 0 and w[j] < 0)
    r = q.copy()
    for j in range(len(a)):
        if a[j] > 0 and w[j] > 0:
            r[j] += q[j] * (b * pos / (pos + neg)) / z_pp
        if a[j] > 0 and w[j] < 0:
            r[j] += q[j] * (b * neg / (pos + neg)) / z_pn
    R = np.abs(r) * r.sum() / np.abs(r).sum()
    for layer in range(len(weights) - 2, -1, -1):
        a, w = acts[layer], weights[layer]
        total = np.zeros_like(a)
        for branch in (a > 0, a < 0):
            c = np.zeros_like(a)
            for k in range(w.shape[0]):
                if R[k] == 0:
                    continue
                za = sum(abs(a[j]) * w[k, j] for j in range(len(a)) if branch[j] and w[k, j] > 0)
                zb = sum(abs(a[j]) * -w[k, j] for j in range(len(a)) if branch[j] and w[k, j] < 0)
                for j in range(len(a)):
                    if not branch[j]:
                        continue
                    if w[k, j] > 0 and za > 0:
                        c[j] += abs(a[j]) * w[k, j] * R[k] / za
                    if w[k, j] < 0:
                        c[j] += abs(a[j]) * -w[k, j] * R[k] / (za + zb)
            nz = c != 0
            if nz.any():
                c[nz] -= (c.sum() - R.sum()) / nz.sum()
            total += c
        R = total
    return R


def random_mlp(sizes=(6, 5, 4, 3), seed=0, dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers).to(dtype).eval()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.bias.uniform_(-0.3, 0.3)
    return net


@pytest.mark.parametrize("signed_inputs", [False, True])
def test_rap_matches_loop_reference_for_every_class(signed_inputs):
    net = random_mlp()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 2, 3, generator=g, dtype=torch.float64)  # flattened to 6 by nn.Flatten
    if signed_inputs:
        x = x - 0.4
    r = relevance("rap", net, x, all_classes(4, 3))
    assert r.shape == (4, 3, 2, 3)
    ws = [m.weight.detach().numpy() for m in net if isinstance(m, nn.Linear)]
    bs = [m.bias.detach().numpy() for m in net if isinstance(m, nn.Linear)]
    logits = net(x).detach()
    for i in range(4):
        for t in range(3):
            want = rap_loop(ws, bs, x[i].flatten().numpy(), t)
            np.testing.assert_allclose(r[i, t].flatten().detach().numpy(), want, rtol=1e-9, atol=1e-12)
            if not signed_inputs:  # both sign branches conserve the total, so only then is it the logit
                assert float(r[i, t].detach().sum()) == pytest.approx(float(logits[i, t]), rel=1e-9)
    # (B, K) targets = one target at a time
    one = relevance("rap", net, x, torch.tensor([2, 0, 1, 1]))
    assert torch.allclose(one[:, 0], r[torch.arange(4), torch.tensor([2, 0, 1, 1])])


def test_zplus_equals_zennit_zplus_without_bias():
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite
    from zennit.rules import ZPlus

    net = random_mlp(sizes=(8, 16, 12, 4), seed=3)
    x = torch.rand(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([0, 3, 1, 2, 2])
    ours = relevance("lrp_zplus", net, x, t)[:, 0]
    comp = LayerMapComposite([(nn.Linear, ZPlus(stabilizer=1e-12, zero_params="bias"))])
    onehot = torch.nn.functional.one_hot(t, 4).to(torch.float64)
    with Gradient(net, comp) as attributor:
        _, ref = attributor(x.clone().requires_grad_(True), lambda out: out * onehot)
    assert torch.allclose(ours, ref, rtol=1e-8, atol=1e-12)
    assert (ours.abs().sum(1) > 0).all()


def test_gradient_x_input_equals_autograd_also_through_dropout():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 3)).double()
    net.train()  # dropout active: the trace draws the mask and the rule must use it
    x = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
    tr = trace_mlp(net, x)
    t = torch.tensor([1, 0, 2, 1])
    ours = relevance_from_trace("gradient_x_input", tr, t)[:, 0]
    (grad,) = torch.autograd.grad(tr.logits.gather(1, t[:, None]).sum(), x)
    assert torch.allclose(ours, x * grad)


# --- differentiability -------------------------------------------------------------------------------
def _net_from(params: list[torch.Tensor], sizes: tuple[int, ...]) -> nn.Sequential:
    """An MLP whose weights ARE the given tensors (so gradcheck can vary them)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(n_in, n_out)
        del lin.weight, lin.bias
        lin.weight, lin.bias = params[2 * i], params[2 * i + 1]
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@pytest.mark.parametrize("method", sorted(RELEVANCE))
def test_maps_are_differentiable_in_the_weights_gradcheck(method):
    sizes = (5, 4, 3)
    net = random_mlp(sizes=sizes, seed=5)
    params = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
    x = torch.rand(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    y = torch.tensor([0, 2, 1])
    target = torch.rand(3, 1, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))

    def loss(*ps):
        r = scale_maps(relevance(method, _net_from(list(ps), sizes), x, y), "minmax")
        return (r - target).pow(2).mean()

    assert torch.autograd.gradcheck(loss, tuple(params), eps=1e-6, atol=1e-6)
    # and the raw maps, every class at once
    assert torch.autograd.gradcheck(
        lambda *ps: relevance(method, _net_from(list(ps), sizes), x, all_classes(3, 3)), tuple(params),
        eps=1e-6, atol=1e-6)


def test_rap_gradient_reaches_every_layer():
    net = random_mlp(sizes=(6, 5, 4, 3), seed=2)
    x = torch.rand(2, 6, dtype=torch.float64)
    r = relevance("rap", net, x, torch.tensor([0, 1]))
    scale_maps(r).pow(2).sum().backward()
    for name, p in net.named_parameters():
        if name.endswith("weight"):
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


# --- scaling, helpers, errors ------------------------------------------------------------------------
def test_scale_maps_per_map_and_safe_divide():
    r = torch.tensor([[[-1.0, 0.0, 3.0], [2.0, 2.0, 2.0]]])
    mm = scale_maps(r, "minmax")
    assert torch.allclose(mm, torch.tensor([[[0.0, 0.25, 1.0], [0.0, 0.0, 0.0]]]))
    ma = scale_maps(r, "maxabs")
    assert torch.allclose(ma, torch.tensor([[[1 / 3, 0.5, 1.0], [1.0, 1.0, 1.0]]]))
    assert torch.equal(scale_maps(r, "none"), r)
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([0.0, 4.0], requires_grad=True)
    q = safe_divide(a, b)
    assert q.tolist() == [0.0, 0.5]
    q.sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all() and float(b.grad[0]) == 0.0
    with pytest.raises(XaipipeError, match="unknown map scaling"):
        scale_maps(r, "sigmoid")


def test_errors_name_the_problem():
    net = random_mlp()
    x = torch.rand(2, 6, dtype=torch.float64)
    with pytest.raises(XaipipeError, match="unknown relevance rule"):
        relevance("rde", net, x, torch.tensor([0, 1]))
    with pytest.raises(XaipipeError, match="targets must"):
        relevance("rap", net, x, torch.tensor([0, 1, 2]))
    with pytest.raises(XaipipeError, match="0..2"):
        relevance("rap", net, x, torch.tensor([0, 3]))
    with pytest.raises(XaipipeError, match="not supported"):
        relevance("rap", nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)).double(), x,
                  torch.tensor([0, 1]))
    with pytest.raises(XaipipeError, match="end with an nn.Linear"):
        relevance("rap", nn.Sequential(nn.Linear(6, 3), nn.ReLU()).double(), x, torch.tensor([0, 1]))


def test_xaipipe_mlp_is_supported_in_eval_and_train_mode():
    from xaipipe.models import MLP

    torch.manual_seed(0)
    m = MLP(in_features=16, hidden=[8, 8], n_classes=4, dropout=0.5, input_dropout=0.2).eval()
    x = torch.rand(3, 4, 4)
    tr = trace_mlp(m, x)
    assert torch.allclose(tr.logits, m(x))
    r = relevance_from_trace("rap", tr, torch.tensor([0, 1, 2]))
    assert r.shape == (3, 1, 4, 4)
    m.train()
    assert trace_mlp(m, x).logits.shape == (3, 4)
