"""The one registry of loss terms (xaipipe/losses): terms by name, objectives as weighted sums in order,
each term against its formula written out here."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from xaipipe.errors import XaipipeError
from xaipipe.losses import BUILTIN, LossInputs, Objective, get_term, register_term, terms


def batch(seed=0, b=6, c=4):
    g = torch.Generator().manual_seed(seed)
    return LossInputs(logits=torch.randn(b, c, generator=g, dtype=torch.float64, requires_grad=True),
                      labels=torch.randint(0, c, (b,), generator=g),
                      teacher_logits=torch.randn(b, c, generator=g, dtype=torch.float64))


def test_every_builtin_term_is_registered_by_its_module():
    for name, module in BUILTIN.items():
        assert get_term(name).__module__ == module
    assert set(BUILTIN) <= set(terms())


def test_terms_against_their_formulas():
    x = batch()
    z, y, zt = x.logits, x.labels, x.teacher_logits
    torch.testing.assert_close(get_term("ce")(x), F.cross_entropy(z, y), rtol=0, atol=0)
    t = 3.0
    p, log_q = torch.softmax(zt / t, 1), torch.log_softmax(z / t, 1)
    want_kd = (p * (torch.log(p) - log_q)).sum(1).mean() * t * t
    torch.testing.assert_close(get_term("kd")(x, temperature=t), want_kd, rtol=1e-12, atol=1e-12)
    onehot = torch.eye(4, dtype=z.dtype)[y]
    torch.testing.assert_close(get_term("softmax_mse")(x), ((torch.softmax(z, 1) - onehot) ** 2).sum() / len(y))
    w = torch.tensor([1.0, 2.0, 0.0, 1.0, 3.0, 1.0], dtype=z.dtype)
    xw = LossInputs(logits=z, labels=y, weights=w)
    ce_rows = -torch.log_softmax(z, 1)[torch.arange(6), y]
    torch.testing.assert_close(get_term("ce")(xw), (ce_rows * w).sum() / w.sum())
    out, tgt = torch.rand(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    torch.testing.assert_close(get_term("l1")(LossInputs(extra={"outputs": out, "targets": tgt})),
                               (out - tgt).abs().mean())


def test_objective_is_the_weighted_sum_in_order_and_one_term_is_the_term_itself():
    x = batch(1)
    ce, kd = get_term("ce")(x), get_term("kd")(x, temperature=2.0)
    total, parts = Objective({"kd": {"weight": 0.9, "temperature": 2.0}, "ce": 0.1})(x)
    assert torch.equal(total, 0.9 * kd + 0.1 * ce)  # bit for bit, in this order
    assert set(parts) == {"kd", "ce"} and not parts["kd"].requires_grad
    one, _ = Objective([("ce", 1.0)])(x)
    assert torch.equal(one, ce)
    total.backward()
    assert x.logits.grad is not None and float(x.logits.grad.abs().sum()) > 0
    assert repr(Objective({"ce": 1.0, "kd": 0.5})) == "1·ce + 0.5·kd"


def test_errors_name_the_term_and_what_is_missing():
    with pytest.raises(XaipipeError, match="unknown loss term 'kl'; known: .*kd"):
        Objective({"kl": 1.0})
    with pytest.raises(XaipipeError, match="'kd' needs teacher_logits"):
        Objective({"kd": 1.0})(LossInputs(logits=torch.zeros(2, 3), labels=torch.zeros(2, dtype=torch.long)))
    with pytest.raises(XaipipeError, match="registered twice"):
        register_term("ce")(lambda inputs: inputs.logits.sum())
    with pytest.raises(XaipipeError, match="at least one"):
        Objective({})


def test_a_new_term_is_one_function_and_usable_by_name():
    @register_term("_test_logit_norm")
    def logit_norm(inputs, p=2.0):
        return inputs.need("logits", "_test_logit_norm").norm(p=p, dim=1).mean()

    try:
        x = batch(2)
        total, _ = Objective({"ce": 1.0, "_test_logit_norm": {"weight": 0.01, "p": 1.0}})(x)
        torch.testing.assert_close(total, F.cross_entropy(x.logits, x.labels) + 0.01 * x.logits.abs().sum(1).mean())
    finally:
        from xaipipe.losses import TERMS

        del TERMS["_test_logit_norm"]
