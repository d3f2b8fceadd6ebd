"""The one relevance interface (xaipipe/relevance.py): one table of methods across text, MLP, image and RNN
models, each (name, kind) bound by exactly the module the table names, and one ``attribute`` call that
returns what each kind's own implementation returns."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from xaipipe import relevance
from xaipipe.errors import XaipipeError
from xaipipe.models import MLP, TextCNN


def test_every_builtin_is_bound_by_the_module_the_table_names():
    for name, kinds in relevance.BUILTIN.items():
        for kind, module in kinds.items():
            impl = relevance.get(name, kind)
            assert impl.__module__ == module, (name, kind, impl.__module__)
    for kind in relevance.KINDS:  # and nothing built in is missing from the table
        public = {n for n in relevance.implementations(kind) if not n.startswith("_")}
        assert public == {n for n, ks in relevance.BUILTIN.items() if kind in ks}, kind


def test_a_method_shared_by_kinds_has_one_name_and_one_line():
    assert set(relevance.BUILTIN["lrp_zplus"]) == {"text", "mlp"}
    assert set(relevance.BUILTIN["gradient_x_input"]) == {"text", "mlp"}
    assert set(relevance.BUILTIN["shap"]) == {"text", "image"} == set(relevance.BUILTIN["lime"])
    # the per-kind tables of the older modules are views of the one registry, not copies
    from xaipipe.distill.relevance import RELEVANCE
    from xaipipe.distill.xdistill.explainers import EXPLAINERS
    from xaipipe.explain.base import METHODS

    assert METHODS is relevance.IMPLEMENTATIONS["text"] and RELEVANCE is relevance.IMPLEMENTATIONS["mlp"]
    assert EXPLAINERS is relevance.IMPLEMENTATIONS["image"]


def test_registering_a_taken_pair_or_an_unknown_kind_fails():
    with pytest.raises(XaipipeError, match="mlp relevance method 'lrp_zplus' registered twice"):
        relevance.register("lrp_zplus", "mlp")(lambda trace, t: t)
    with pytest.raises(XaipipeError, match="unknown kind"):
        relevance.register("_x", "audio")
    with pytest.raises(XaipipeError, match=r"'rap' for text models \(it exists for mlp models\)"):
        relevance.get("rap", "text")
    relevance.register("_test_rnn_ones", "rnn")(lambda model, x, target=None: None)
    try:  # a name new to every kind is registered for the one kind only
        assert "_test_rnn_ones" in relevance.names("rnn") and "_test_rnn_ones" not in relevance.names("text")
    finally:
        del relevance.IMPLEMENTATIONS["rnn"]["_test_rnn_ones"]


def text_model(seed=0):
    torch.manual_seed(seed)
    emb = torch.randn(30, 8)
    emb[0] = 0
    return TextCNN(emb, n_classes=3, channels=6, hidden=[], dropout=0.0).eval()


def test_attribute_text_equals_the_explainer():
    from xaipipe.explain import get_explainer

    model = text_model()
    docs = [np.array([3, 4, 5, 6, 7]), np.array([9, 8, 2, 11, 12, 13, 1])]
    got = relevance.attribute("gradient_x_input", model, docs, target=[0, 2])
    want = [e.relevance for e in get_explainer("gradient_x_input", model).attribute(docs, [0, 2])]
    assert relevance.kind_of(model) == "text"
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # a method that has no text implementation is named as such
    with pytest.raises(XaipipeError, match="for text models"):
        relevance.attribute("rap", model, docs)


def test_attribute_mlp_equals_the_rule_and_stays_differentiable():
    from xaipipe.distill.relevance import relevance as mlp_relevance

    torch.manual_seed(1)
    model = MLP(in_features=10, hidden=[7], n_classes=4, dropout=0.0, input_dropout=0.0).double().eval()
    x = torch.rand(5, 10, dtype=torch.float64)
    assert relevance.kind_of(model) == "mlp"
    for method in ("lrp_zplus", "gradient_x_input", "rap"):
        got = relevance.attribute(method, model, x, target=[0, 1, 2, 3, 0])
        want = mlp_relevance(method, model, x, torch.tensor([0, 1, 2, 3, 0]))[:, 0]
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert got.shape == x.shape
    got = relevance.attribute("lrp_zplus", model, x)  # default target: the predicted class
    pred = model(x).argmax(1)
    torch.testing.assert_close(got, mlp_relevance("lrp_zplus", model, x, pred)[:, 0], rtol=0, atol=0)
    got.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.dim() == 2)


def test_attribute_rnn_equals_lrp_explain():
    from xaipipe.rnn.cells import build_cell
    from xaipipe.rnn.lrp import explain

    torch.manual_seed(0)
    model = build_cell("shallow", 4).double().eval()
    x = torch.rand(3, 28, 28, dtype=torch.float64)
    assert relevance.kind_of(model) == "rnn"
    np.testing.assert_array_equal(relevance.attribute("deep_taylor", model, x, target=[1, 2, 3]),
                                  explain(model, x, [1, 2, 3]).relevance)


def test_attribute_image_equals_the_superpixel_explainer():
    from xaipipe.distill.xdistill.explainers import gradcam_maps
    from xaipipe.distill.xdistill.models import build_classifier

    torch.manual_seed(0)
    model = build_classifier("lenet5", in_channels=1, n_classes=10, image_size=28).eval()
    x = torch.rand(2, 1, 28, 28)
    segments = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 7, 0), 7, 1)[None].repeat(2, 0)
    assert relevance.kind_of(model) == "image"
    target = model(x).argmax(1).numpy()
    got = relevance.attribute("gradcam", model, x, segments=segments)
    np.testing.assert_array_equal(got, gradcam_maps(model, x, segments, target))
    with pytest.raises(XaipipeError, match="needs segments="):
        relevance.attribute("gradcam", model, x)


def test_importing_the_registry_imports_no_method_library():
    code = ("import sys, xaipipe.relevance, xaipipe.explain; "
            "print(any(m in sys.modules for m in ('zennit', 'captum', 'shap', 'lime')))")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert importlib.import_module("xaipipe.relevance").BUILTIN  # the table itself is plain data
