"""RNN cells (xaipipe.rnn.cells, .data): Table 4.1 split, Table 4.3 parameter counts, section 4.4 layers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xaipipe.errors import ConfigError, XaipipeError
from xaipipe.rnn.cells import (CELLS, SoftplusBiasConv2d, SoftplusBiasLinear, build_cell, count_parameters,
                               load_model, plain_copy, save_model)
from xaipipe.rnn.data import merge_columns, scale_pixels, split_columns
from xaipipe.rnn.published import TABLE_4_3

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("cell", sorted(TABLE_4_3))
@pytest.mark.parametrize("seq", [1, 4, 7, 14])
def test_parameter_counts_equal_table_4_3(cell, seq):
    assert count_parameters(build_cell(cell, seq)) == TABLE_4_3[cell][seq]


def test_every_cell_of_table_4_3_is_registered():
    assert set(CELLS) == set(TABLE_4_3)


def test_layer_sizes_of_section_4_4():
    sizes = {c: build_cell(c, 4).layer_sizes() for c in CELLS}
    assert sizes["shallow"] == {"pixels_per_step": 196, "features": 196, "hidden": 768, "recur": 128}
    assert sizes["deep"] == {"pixels_per_step": 196, "features": 512, "hidden": 256, "recur": 128}
    assert sizes["deep_v2"] == {"pixels_per_step": 196, "features": 256, "hidden": 128, "recur": 128}
    # ConvDeep, SEQ 4: 28 x 7 -> P1 14 x 4 -> P2 7 x 2 (SAME pooling rounds up), 48 channels
    assert sizes["conv_deep"] == {"pixels_per_step": 196, "features": 7 * 2 * 48, "hidden": 256, "recur": 128}
    assert build_cell("deep", 1).recur == 0 and build_cell("deep", 1).recurrent is None  # n^(5) = 0 for SEQ 1


@pytest.mark.parametrize("seq,width", [(1, 28), (4, 7), (7, 4), (14, 2)])
def test_column_split_of_table_4_1(seq, width):
    images = torch.arange(3 * 28 * 28, dtype=torch.float32).reshape(3, 28, 28)
    steps = split_columns(images, seq)
    assert steps.shape == (3, seq, 28, width)
    for t in range(seq):  # block t = columns t*w .. (t+1)*w - 1, left to right
        assert torch.equal(steps[:, t], images[:, :, t * width:(t + 1) * width])
    assert torch.equal(merge_columns(steps), images)


def test_sequence_length_must_divide_the_width():
    with pytest.raises(ConfigError, match="does not divide"):
        split_columns(torch.zeros(1, 28, 28), 5)
    with pytest.raises(ConfigError, match="does not divide"):
        build_cell("deep", 3)


def test_pixel_scaling():
    x = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    assert torch.allclose(scale_pixels(x, (-1, 1)), torch.tensor([[-1.0, 1.0], [-0.6, -0.2]]))
    assert torch.allclose(scale_pixels(x, (0, 1)), torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    with pytest.raises(ConfigError, match="low < high"):
        scale_pixels(x, (1, 0))


def test_initialisation_of_section_4_4():
    torch.manual_seed(0)
    lin = SoftplusBiasLinear(784, 512)
    w = lin.weight.detach()
    assert float(w.abs().max()) <= 0.2 + 1e-7  # truncated at 2 sigma
    assert 0.07 < float(w.std()) < 0.09  # sigma 0.1 truncated at +-2 sigma has std 0.088
    assert abs(float(w.mean())) < 0.005
    assert torch.allclose(lin.effective_bias(), torch.full((512,), -0.01))  # b = ln(e^0.01 - 1)
    assert math.isclose(float(lin.bias_raw[0].detach()), math.log(math.expm1(0.01)), rel_tol=1e-6)


def test_biases_stay_non_positive_for_any_raw_value():
    """Whatever the optimiser does to the raw bias b, the bias the layer uses is -softplus(b) <= 0."""
    torch.manual_seed(0)
    model = build_cell("conv_deep", 7)
    layers = [m for m in model.modules() if isinstance(m, (SoftplusBiasLinear, SoftplusBiasConv2d))]
    assert len(layers) == 6  # C1, C2, 4, 5, 4', 6
    with torch.no_grad():
        for m in layers:
            m.bias_raw.uniform_(-40.0, 40.0)
    assert all(bool((m.effective_bias() <= 0).all()) for m in layers)
    lin = SoftplusBiasLinear(3, 2)
    with torch.no_grad():
        lin.bias_raw.copy_(torch.tensor([5.0, -5.0]))
    x = torch.zeros(1, 3)
    assert torch.allclose(lin(x), -torch.nn.functional.softplus(torch.tensor([[5.0, -5.0]])))


def test_plain_copy_matches_and_drops_dropout():
    torch.manual_seed(1)
    model = build_cell("deep_v2", 4).eval()
    enc = plain_copy(model.encoder)
    assert not any(isinstance(m, torch.nn.Dropout) for m in enc.modules())
    assert all(isinstance(m, torch.nn.Linear) for m in enc.modules() if any(True for _ in m.parameters(False)))
    x = torch.rand(5, 1, 28, 7)
    assert torch.allclose(enc(x), model.encoder(x))
    lin = model.cell.to_plain()
    assert bool((lin.bias <= 0).all())


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = build_cell("deep", 7)
    x = torch.rand(4, 28, 28)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_cell("conv_deep", 14, dropout=0.3).eval()
    save_model(tmp_path / "m.pt", model, {"dataset": "mnist"})
    loaded, meta = load_model(tmp_path / "m.pt")
    x = torch.rand(3, 28, 28)
    assert meta["dataset"] == "mnist" and loaded.name == "conv_deep" and loaded.seq == 14
    assert loaded.dropout_p == 0.3 and not loaded.training
    assert torch.equal(loaded(x), model(x))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(XaipipeError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(XaipipeError, match="not a readable RNN checkpoint"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(XaipipeError, match="unknown RNN cell"):
        build_cell("lstm", 4)
