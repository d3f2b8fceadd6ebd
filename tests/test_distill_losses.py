import math

import pytest
import torch

from xaipipe.errors import XaipipeError
from xaipipe.losses import TERMS, LossInputs, Objective
from xaipipe.losses.kd import kd_loss


def test_kd_loss_equals_formula_on_hand_values():
    zs = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    zt = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    T = 2.0

    def sm(z):
        e = [math.exp(v / T) for v in z]
        return [v / sum(e) for v in e]

    want = 0.0
    for s, t in zip(zs.tolist(), zt.tolist()):
        p, q = sm(t), sm(s)
        want += T * T * sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))
    want /= 2
    assert kd_loss(zs, zt, T).item() == pytest.approx(want, rel=1e-6)
    # direction: KL(p || q), not KL(q || p)
    assert kd_loss(zt, zs, T).item() != pytest.approx(want, rel=1e-3)


def test_kd_loss_zero_when_equal_and_teacher_gets_no_gradient():
    z = torch.randn(4, 3)
    assert kd_loss(z, z.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)
    zs = torch.randn(4, 3, requires_grad=True)
    zt = torch.randn(4, 3, requires_grad=True)
    kd_loss(zs, zt, 1.0).backward()
    assert zs.grad is not None and zt.grad is None


def test_hinton_mixture_and_errors():
    zs, zt, y = torch.randn(5, 4), torch.randn(5, 4), torch.randint(0, 4, (5,))
    ce = torch.nn.functional.cross_entropy(zs, y)

    def hinton(alpha, t):  # the classic mixture alpha KD + (1 - alpha) CE as the registered terms build it
        return Objective([("kd", alpha, {"temperature": t}), ("ce", 1.0 - alpha)])(
            LossInputs(logits=zs, labels=y, teacher_logits=zt))[0]

    assert hinton(0.0, 1.0).item() == pytest.approx(ce.item())
    assert hinton(0.4, 2.0).item() == pytest.approx(0.4 * kd_loss(zs, zt, 2.0).item() + 0.6 * ce.item(), rel=1e-6)
    assert "kd" in TERMS
    with pytest.raises(XaipipeError, match="temperature"):
        kd_loss(zs, zt, 0.0)
