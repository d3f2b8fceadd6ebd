"""XDistillation networks: parameter counts against Table I-III and hand formulas, the fused student."""

from __future__ import annotations

import pytest
import torch

from xaipipe.distill.xdistill import models as M
from xaipipe.distill.xdistill.methods import get_method
from xaipipe.errors import XaipipeError
from xaipipe.losses import LossInputs, get_term


def conv(i, o, k):
    return i * o * k * k + o


def convt(i, o, k):
    return i * o * k * k + o


def lin(i, o):
    return i * o + o


def test_small_cae_has_table_one_parameter_count(torch_single_thread):
    cae = M.build_cae("small")
    # Conv(1->16, 3) + Conv(16->4, 3) + ConvT(4->16, 2) + ConvT(16->1, 2)
    assert conv(1, 16, 3) + conv(16, 4, 3) + convt(4, 16, 2) + convt(16, 1, 2) == 1077
    assert M.count_parameters(cae) == 1077 == M.PUBLISHED_CAE_PARAMETERS["small"]
    out = cae(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 1, 28, 28)
    assert out.abs().max() <= 1.0  # tanh output (Eq. 2)
    kinds = [type(m).__name__ for m in cae.modules() if not isinstance(m, torch.nn.Sequential)]
    assert kinds.count("Conv2d") == 2 and kinds.count("ConvTranspose2d") == 2 and kinds.count("MaxPool2d") == 2


def test_large_cae_layers_and_count(torch_single_thread):
    cae = M.build_cae("large")
    w = [3, 12, 24, 48, 96]
    want = sum(conv(w[i], w[i + 1], 4) for i in range(4))
    want += convt(96, 48, 4) + convt(48, 24, 4) + convt(24, 12, 4) + convt(12, 1, 4)
    assert M.count_parameters(cae) == want == 194569
    # Table I's 198,796 cannot be reproduced: the paper gives the layers but not the widths
    assert M.PUBLISHED_CAE_PARAMETERS["large"] == 198796
    convs = [m for m in cae.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(convs) == 8 and all(m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)
                                   for m in convs)
    assert cae(torch.rand(2, 3, 32, 32)).shape == (2, 1, 32, 32)
    with pytest.raises(XaipipeError, match="divisible by 16"):
        M.check_cae_input(cae, 28, 28)


def test_classifier_parameter_counts(torch_single_thread):
    lenet = M.build_classifier("lenet5")
    assert M.count_parameters(lenet) == conv(1, 6, 5) + conv(6, 16, 5) + lin(400, 120) + lin(120, 84) + lin(84, 10)
    net = M.build_classifier("net")
    assert M.count_parameters(net) == conv(1, 6, 5) + conv(6, 12, 5) + lin(300, 20) + lin(20, 10) == 8198
    # the CIFAR VGGs with batch norm and one linear layer have exactly Table II/III's counts
    assert M.count_parameters(M.build_classifier("vgg16")) == 14728266
    assert M.count_parameters(M.build_classifier("vgg11")) == 9231114
    x = torch.rand(2, 1, 28, 28)
    feats, hints = lenet.forward_features(x)
    assert feats.shape == (2, 84) and [h.shape[1:] for h in hints] == [(6, 28, 28), (16, 10, 10)]
    assert torch.allclose(lenet.head(feats), lenet(x))
    _, hs = net.forward_features(x)
    assert [h.shape[2:] for h in hs] == [h.shape[2:] for h in hints]  # same grids as the teacher


def test_vgg_stages_hints_and_extra_pools(torch_single_thread):
    m = M.build_classifier("vgg", cfg=[4, "M", "M", 8, "M"])
    feats, hints = m.forward_features(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, 8) and [h.shape[1:] for h in hints] == [(4, 32, 32), (8, 8, 8)]
    assert m.cam_layer is m.stage_acts[-1][0]
    with pytest.raises(XaipipeError, match="unknown architecture"):
        M.build_classifier("resnet")


def test_fused_student_forward_shape_parameters_and_frozen_cae(torch_single_thread):
    torch.manual_seed(0)
    f = M.build_fused({"arch": "net"}, {"size": "small"}, "output", 10, 1, 28)
    x = torch.rand(5, 1, 28, 28)
    logits = f(x)
    assert logits.shape == (5, 10)
    assert f.cae_dim == 784 and f.head.in_features == 784 + 20
    # CNN without its own head + CAE + concatenation layer
    want = (8198 - lin(20, 10)) + 1077 + lin(784 + 20, 10)
    assert M.count_parameters(f, trainable_only=False) == want == 17115
    assert M.count_parameters(f, trainable_only=True) == want - 1077
    # the concatenation layer sees [flatten(CAE(x)) ; CNN features]
    e = f.cae(x).flatten(1)
    feats, _ = f.cnn.forward_features(x)
    w, b = f.head.weight, f.head.bias
    assert torch.allclose(logits, e @ w[:, :784].T + feats @ w[:, 784:].T + b, atol=1e-5)
    assert f.concat_weight("cnn").shape == (10, 20) and f.concat_weight("cae").shape == (10, 784)
    # frozen CAE: no gradient, stays in eval mode
    f.train()
    assert not f.cae.training
    f(x).sum().backward()
    assert all(p.grad is None for p in f.cae.parameters())
    assert f.head.weight.grad is not None
    lat = M.build_fused({"arch": "net"}, {"size": "small"}, "latent", 10, 1, 28)
    assert lat.cae_dim == 4 * 7 * 7 and lat(x).shape == (5, 10)


def test_feature_reduction_penalty_is_the_squared_norm_of_c(torch_single_thread):
    f = M.build_fused({"arch": "net"}, {"size": "small"}, "output", 10, 1, 28)
    with torch.no_grad():
        f.head.weight.copy_(torch.arange(10 * 804, dtype=torch.float32).view(10, 804) / 1000)
    w = f.head.weight.detach()
    penalty = get_term("weight_l2")
    method = get_method({"method": "xdistill"})
    assert penalty(LossInputs(extra={"weight": method.penalty_weight(f)})).item() == pytest.approx(
        float((w[:, 784:] ** 2).sum()), rel=1e-6)
    all_ = get_method({"method": "xdistill", "penalty_on": "all"})
    assert penalty(LossInputs(extra={"weight": all_.penalty_weight(f)})).item() == pytest.approx(
        float((w ** 2).sum()), rel=1e-6)
    assert "weight_l2" in repr(method.objective())  # the penalty is a term of the objective
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    with pytest.raises(XaipipeError, match="needs the teacher"):
        method.loss(f, None, x, y)  # KD (alpha = 0.9) without a teacher
    no_kd = get_method({"method": "xdistill", "alpha": 1.0})
    loss, logits, parts = no_kd.loss(f, None, x, y)
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert loss.item() == pytest.approx(ce.item() + 5e-4 * parts["penalty"], rel=1e-6)


def test_checkpoint_round_trip(tmp_path, torch_single_thread):
    spec = {"kind": "fused", "kwargs": {"student": {"arch": "net", "kwargs": {}},
                                        "cae": {"size": "small", "kwargs": {}}, "cae_features": "output",
                                        "n_classes": 10, "in_channels": 1, "image_size": 28}}
    f = M.build_from_spec(spec)
    M.save_model(tmp_path / "m.pt", spec, f, {"role": "student"})
    g, meta = M.load_model(tmp_path / "m.pt")
    x = torch.rand(2, 1, 28, 28)
    assert meta == {"role": "student", "spec": spec} and torch.allclose(f.eval()(x), g(x))
    with pytest.raises(XaipipeError, match="not found"):
        M.load_model(tmp_path / "missing.pt")
