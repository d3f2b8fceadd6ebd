"""Deep Taylor LRP through time (xaipipe.rnn.lrp) against matrix-form references (numpy, float64).

The references write every rule as ``R_j = sum_k q_jk / (sum_j q_jk) R_k`` with an explicit contribution
matrix (thesis Table 3.1): z+ ``q_jk = a_j w_jk^+``, z^beta ``q_jk = x_j w_jk - l w_jk^+ - h w_jk^-``, and the
Shallow cell's mixed layer (z^beta on the pixels, z+ on r_t, one denominator). The full reference runs the
recurrence forward with the model's weights and walks the relevance back through time by hand
(Algorithm 1 on the unrolled network). Zennit runs with a 1e-12 stabilizer so the comparison is tight.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from zennit.core import Composite
from zennit.rules import ZBox, ZPlus

from xaipipe.errors import XaipipeError
from xaipipe.rnn.cells import build_cell
from xaipipe.rnn.lrp import (PixelBoxZPlus, UnrolledRNN, deep_taylor_composite, explain, explain_unrolled,
                             step_relevance)

pytestmark = pytest.mark.usefixtures("torch_single_thread")
STAB = 1e-12
LOW, HIGH = -1.0, 1.0


# --- matrix-form references ------------------------------------------------------------------------


def ref_zplus(a, w, r_out):
    """z+: ``w`` (out, in), ``a`` (in,) >= 0."""
    q = a[None, :] * np.clip(w, 0, None)  # (out, in)
    return (q / q.sum(1, keepdims=True) * r_out[:, None]).sum(0)


def ref_zbox(x, w, low, high, r_out):
    q = x[None, :] * w - low * np.clip(w, 0, None) - high * np.clip(w, None, 0)
    return (q / q.sum(1, keepdims=True) * r_out[:, None]).sum(0)


def ref_mixed(x, r, w, low, high, r_out):
    """Shallow layer 4: inputs [x ; r], z^beta on x, z+ on r, shared denominator."""
    n = len(x)
    wx, wr = w[:, :n], w[:, n:]
    qx = x[None, :] * wx - low * np.clip(wx, 0, None) - high * np.clip(wx, None, 0)
    qr = r[None, :] * np.clip(wr, 0, None)
    z = qx.sum(1, keepdims=True) + qr.sum(1, keepdims=True)
    return (qx / z * r_out[:, None]).sum(0), (qr / z * r_out[:, None]).sum(0)


def relu(v):
    return np.maximum(v, 0)


def np_layer(layer):
    return layer.weight.detach().double().numpy(), layer.effective_bias().detach().double().numpy()


def ref_lrp_dense(model, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Hand-written LRP through time of a dense cell (Shallow, Deep, DeepV2) for one scaled image."""
    from xaipipe.rnn.cells import SoftplusBiasLinear

    seq, h, wd = model.seq, model.height, model.step_width
    enc = [np_layer(m) for m in model.encoder if isinstance(m, SoftplusBiasLinear)]
    head = [np_layer(m) for m in model.head if isinstance(m, SoftplusBiasLinear)]
    wc, bc = np_layer(model.cell)
    wr, br = np_layer(model.recurrent) if model.recur else (None, None)
    xs = [image[:, t * wd:(t + 1) * wd].reshape(-1) for t in range(seq)]  # row-major block = Flatten order
    enc_acts, zins, acts = [], [], []
    r = np.zeros(model.recur)
    for t in range(seq):
        chain = [xs[t]]
        for w, b in enc:
            chain.append(relu(w @ chain[-1] + b))
        enc_acts.append(chain)
        zin = np.concatenate([chain[-1], r]) if model.recur else chain[-1]
        zins.append(zin)
        a = relu(wc @ zin + bc)
        acts.append(a)
        if model.recur and t < seq - 1:
            r = relu(wr @ a + br)
    head_acts = [acts[-1]]
    for w, b in head[:-1]:
        head_acts.append(relu(w @ head_acts[-1] + b))
    logits = head[-1][0] @ head_acts[-1] + head[-1][1]
    c = int(np.argmax(logits))
    rel = np.zeros_like(logits)
    rel[c] = logits[c]
    for (w, _), a in zip(reversed(head), reversed(head_acts)):
        rel = ref_zplus(a, w, rel)
    heat = np.zeros((h, seq * wd))
    for t in reversed(range(seq)):  # rel = relevance of a_t
        nf = len(enc_acts[t][-1])
        if not enc and model.recur:  # Shallow: pixels and r_t in one layer
            r_x, r_r = ref_mixed(xs[t], zins[t][nf:], wc, LOW, HIGH, rel)
        elif not enc:  # Shallow, SEQ 1
            r_x, r_r = ref_zbox(xs[t], wc, LOW, HIGH, rel), None
        else:
            r_in = ref_zplus(zins[t], wc, rel)
            r_f, r_r = r_in[:nf], r_in[nf:]
            for i in reversed(range(len(enc))):
                w = enc[i][0]
                r_f = ref_zbox(xs[t], w, LOW, HIGH, r_f) if i == 0 else ref_zplus(enc_acts[t][i], w, r_f)
            r_x = r_f
        heat[:, t * wd:(t + 1) * wd] = r_x.reshape(h, wd)
        if t > 0:
            rel = ref_zplus(acts[t - 1], wr, r_r)  # r_t = relu(W_5 a_{t-1} - softplus(b_5))
    return heat, float(logits[c])


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28)).astype(np.float64)
    x[:, :, :3] = 0  # some empty columns, like MNIST margins
    return torch.from_numpy(x / 255 * 2 - 1)


def model64(cell, seq, seed=0):
    torch.manual_seed(seed)
    return build_cell(cell, seq).double().eval()


# --- single layers against the references ------------------------------------------------------------


def zennit_relevance(rule, layer, x, r_out):
    x = x.clone().requires_grad_(True)
    comp = Composite(module_map=lambda ctx, name, m: rule if isinstance(m, (nn.Linear, nn.Conv2d)) else None)
    with comp.context(layer):
        out = layer(x)
        (rel,) = torch.autograd.grad(out, x, grad_outputs=r_out)
    return rel


def nonpositive_linear(n_in, n_out, seed):
    torch.manual_seed(seed)
    lin = nn.Linear(n_in, n_out).double()
    with torch.no_grad():
        lin.bias.copy_(-lin.bias.abs())
    return lin


def test_zplus_matches_matrix_form():
    lin = nonpositive_linear(7, 5, 0)
    a = torch.rand(2, 7, dtype=torch.float64)
    r_out = torch.rand(2, 5, dtype=torch.float64)
    got = zennit_relevance(ZPlus(stabilizer=STAB), lin, a, r_out)
    w = lin.weight.detach().numpy()
    for i in range(2):
        want = ref_zplus(a[i].numpy(), w, r_out[i].numpy())
        np.testing.assert_allclose(got[i].numpy(), want, rtol=1e-9)
        assert got[i].sum().item() == pytest.approx(r_out[i].sum().item(), rel=1e-9)


def test_zbox_matches_matrix_form_with_the_corrected_sign():
    lin = nonpositive_linear(6, 4, 1)
    x = torch.rand(2, 6, dtype=torch.float64) * 2 - 1
    r_out = torch.rand(2, 4, dtype=torch.float64)
    got = zennit_relevance(ZBox(low=torch.tensor(LOW), high=torch.tensor(HIGH), stabilizer=STAB), lin, x, r_out)
    w = lin.weight.detach().numpy()
    for i in range(2):
        want = ref_zbox(x[i].numpy(), w, LOW, HIGH, r_out[i].numpy())
        np.testing.assert_allclose(got[i].numpy(), want, rtol=1e-9)
        assert (got[i] >= 0).all()  # every term is >= 0 inside the box
        # Table 3.1 as printed (w^- and w^+ swapped) is a different, non-positive-definite rule
        q_printed = x[i].numpy()[None] * w - LOW * np.clip(w, None, 0) - HIGH * np.clip(w, 0, None)
        printed = (q_printed / q_printed.sum(1, keepdims=True) * r_out[i].numpy()[:, None]).sum(0)
        assert not np.allclose(got[i].numpy(), printed)


def test_mixed_pixel_box_and_zplus_layer_matches_matrix_form():
    lin = nonpositive_linear(9, 4, 2)
    n_box = 5
    x = torch.cat([torch.rand(2, n_box, dtype=torch.float64) * 2 - 1, torch.rand(2, 4, dtype=torch.float64)], 1)
    x[0, -1] = 0.0  # an inactive recurrent unit
    r_out = torch.rand(2, 4, dtype=torch.float64)
    got = zennit_relevance(PixelBoxZPlus(n_box, LOW, HIGH, stabilizer=STAB), lin, x, r_out)
    w = lin.weight.detach().numpy()
    for i in range(2):
        rx, rr = ref_mixed(x[i, :n_box].numpy(), x[i, n_box:].numpy(), w, LOW, HIGH, r_out[i].numpy())
        np.testing.assert_allclose(got[i].numpy(), np.concatenate([rx, rr]), rtol=1e-9)
        assert got[i].sum().item() == pytest.approx(r_out[i].sum().item(), rel=1e-9)
    assert got[0, -1].item() == 0.0


@pytest.mark.parametrize("rule", ["zplus", "zbox"])
def test_conv_rules_match_the_dense_toeplitz_form(rule):
    """A SAME-padded convolution is a dense layer; padding positions are no input and get nothing."""
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    with torch.no_grad():
        conv.bias.copy_(-conv.bias.abs())
    shape = (2, 4, 3)
    n_in = int(np.prod(shape))
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
    with torch.no_grad():
        m = (conv(basis) - conv.bias[None, :, None, None]).reshape(n_in, -1).T.numpy()  # (out, in)
    x = torch.rand(1, *shape, dtype=torch.float64)
    if rule == "zbox":
        x = x * 2 - 1
    r_out = torch.rand(1, 3, 4, 3, dtype=torch.float64)
    hook = ZPlus(stabilizer=STAB) if rule == "zplus" else ZBox(torch.tensor(LOW), torch.tensor(HIGH), stabilizer=STAB)
    got = zennit_relevance(hook, conv, x, r_out).reshape(-1).numpy()
    xv, rv = x.reshape(-1).numpy(), r_out.reshape(-1).numpy()
    want = ref_zplus(xv, m, rv) if rule == "zplus" else ref_zbox(xv, m, LOW, HIGH, rv)
    np.testing.assert_allclose(got, want, rtol=1e-8)


# --- the unrolled network -----------------------------------------------------------------------------


@pytest.mark.parametrize("cell,seq", [("shallow", 1), ("shallow", 7), ("deep", 4), ("deep_v2", 14), ("conv_deep", 7)])
def test_unrolled_copy_computes_the_same_logits(cell, seq):
    model = model64(cell, seq)
    x = images(4)
    assert torch.allclose(UnrolledRNN(model)(x), model(x), atol=1e-12)


@pytest.mark.parametrize("cell,seq,pixel_rule", [
    ("shallow", 1, ZBox), ("shallow", 4, PixelBoxZPlus), ("deep", 4, ZBox), ("deep_v2", 7, ZBox),
    ("conv_deep", 4, ZBox)])
def test_rules_are_assigned_per_layer_and_step(cell, seq, pixel_rule):
    net = UnrolledRNN(model64(cell, seq))
    comp = deep_taylor_composite(net, LOW, HIGH)
    rules = {name: type(comp.module_map({}, name, m)) for name, m in net.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))}
    pixel = {n for n, r in rules.items() if r is pixel_rule}
    assert pixel == set(net.pixel_modules()) and len(pixel) == seq  # one pixel layer per step
    assert all(r is ZPlus for n, r in rules.items() if n not in pixel)
    if cell == "conv_deep":
        assert pixel == {f"encoders.{t}.0" for t in range(seq)}  # C1 of every step


@pytest.mark.parametrize("cell,seq", [("shallow", 1), ("shallow", 4), ("shallow", 7), ("deep", 1), ("deep", 7),
                                      ("deep_v2", 4), ("deep_v2", 14)])
def test_lrp_through_time_matches_the_hand_written_reference(cell, seq):
    model = model64(cell, seq, seed=1)
    x = images(2, seed=seq)
    res = explain(model, x, low=LOW, high=HIGH, stabilizer=STAB)
    for i in range(len(x)):
        heat, f = ref_lrp_dense(model, x[i].numpy())
        assert res.output[i] == pytest.approx(f, rel=1e-10)
        np.testing.assert_allclose(res.relevance[i], heat, rtol=1e-7, atol=1e-12 * abs(f))


@pytest.mark.parametrize("cell", ["shallow", "deep", "deep_v2", "conv_deep"])
@pytest.mark.parametrize("seq", [1, 7, 14])
def test_relevance_is_conserved_through_time(cell, seq):
    """sum over all pixels of all steps of R = f(x) = the explained logit (non-positive biases)."""
    model = model64(cell, seq, seed=seq)
    x = images(3, seed=seq)
    res = explain(model, x, low=LOW, high=HIGH, stabilizer=STAB)
    np.testing.assert_allclose(res.relevance.reshape(3, -1).sum(1), res.output, rtol=1e-9)
    assert (res.relevance >= -1e-12).all() or (res.output < 0).any()  # positive logits -> no negative relevance
    assert np.isclose(step_relevance(res.relevance, seq).sum(1), res.output, rtol=1e-9).all()
    if seq > 1:  # relevance reaches the first step through the recurrent connection
        assert (step_relevance(res.relevance, seq)[:, 0] > 0).all()


def test_positive_biases_break_conservation():
    """Negative control: with b > 0 the z+ denominator absorbs a share, so sum R < f(x)."""
    model = model64("deep", 4, seed=2)
    x = images(2)
    net = UnrolledRNN(model)
    res = explain_unrolled(net, x, low=LOW, high=HIGH, stabilizer=STAB)
    np.testing.assert_allclose(res.relevance.reshape(2, -1).sum(1), res.output, rtol=1e-9)
    with torch.no_grad():
        for c in net.cells:
            c.bias.fill_(0.5)
    res_pos = explain_unrolled(net, x, low=LOW, high=HIGH, stabilizer=STAB)
    assert (res_pos.relevance.reshape(2, -1).sum(1) < res_pos.output * 0.99).all()


def test_explain_targets_and_hook_removal():
    model = model64("deep", 7)
    x = images(3)
    before = model(x)
    res = explain(model, x, target=[0, 1, 2], low=LOW, high=HIGH, stabilizer=STAB)
    assert list(res.target) == [0, 1, 2]
    np.testing.assert_allclose(res.output, before.detach().numpy()[[0, 1, 2], [0, 1, 2]], rtol=1e-12)
    np.testing.assert_allclose(res.relevance.reshape(3, -1).sum(1), res.output, rtol=1e-9)
    assert torch.equal(model(x), before)  # nothing left attached
    pred = explain(model, x, low=LOW, high=HIGH, stabilizer=STAB)
    assert list(pred.target) == list(before.argmax(1).numpy())


def test_explain_rejects_pixels_outside_the_box():
    model = model64("deep", 4)
    with pytest.raises(XaipipeError, match="outside the z\\^beta box"):
        explain(model, images(1))  # [-1, 1] pixels, default box [0, 1]
    with pytest.raises(XaipipeError, match="outside the z\\^beta box"):
        explain(model, images(1) * 2, low=LOW, high=HIGH)


def test_a_layer_shared_across_steps_would_be_explained_wrongly():
    """Why the explainer unrolls with per-step copies: Zennit keeps one input per module, so reusing one
    module for every step explains all steps with the last step's input (relevance is then lost)."""
    model = model64("deep", 7)
    x = images(2)
    good = explain_unrolled(UnrolledRNN(model), x, low=LOW, high=HIGH, stabilizer=STAB)
    shared = UnrolledRNN(model)
    shared.encoders = nn.ModuleList([shared.encoders[0]] * 7)
    shared.cells = nn.ModuleList([shared.cells[0]] * 7)
    shared.recurrents = nn.ModuleList([shared.recurrents[0]] * 6)
    assert torch.allclose(shared(x), UnrolledRNN(model)(x))  # same function ...
    bad = explain_unrolled(shared, x, low=LOW, high=HIGH, stabilizer=STAB)
    assert not np.allclose(bad.relevance.reshape(2, -1).sum(1), bad.output, rtol=1e-3)  # ... broken LRP
    np.testing.assert_allclose(good.relevance.reshape(2, -1).sum(1), good.output, rtol=1e-9)
