import math

import pytest
import torch

from xaipipe.distill.losses import LOSSES, hinton_loss, kd_loss
from xaipipe.errors import XaipipeError


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
    assert hinton_loss(zs, zt, y, 0.0, 1.0).item() == pytest.approx(ce.item())
    assert "kd" in LOSSES
    with pytest.raises(XaipipeError, match="temperature"):
        kd_loss(zs, zt, 0.0)
