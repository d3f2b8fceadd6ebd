"""xaipipe.schema: defaults are declared once, in the config schemas, and read by the library."""

from __future__ import annotations

import pytest

from xaipipe import schema


def test_defaults_follow_a_path_through_mappings_and_are_fresh_copies():
    variant = schema.defaults("distill_feedback", "datasets", "*", "variants", "*")
    assert variant["relevance"] == {"method": "lrp_epsilon"} and variant["copies"] == 8
    variant["relevance"]["method"] = "changed"
    assert schema.defaults("distill_feedback", "datasets", "*", "variants", "*")["relevance"]["method"] == "lrp_epsilon"


def test_main_schema_and_a_key_without_default():
    assert schema.defaults("rnn", keys=("epochs", "lr")) == {"epochs": 200, "lr": 0.001}
    with pytest.raises(KeyError, match="rnn: no default declared for not_a_key"):
        schema.defaults("rnn", keys=("epochs", "not_a_key"))
    assert "properties" in schema.node(None)


def test_the_library_constants_are_the_schema_values():
    from xaipipe.distill.feedback_config import DATASET_DEFAULTS, VARIANT_DEFAULTS
    from xaipipe.distill.mnist_kd import DEFAULTS as MNIST_KD
    from xaipipe.rnn.explain import FIGURE_DEFAULTS
    from xaipipe.rnn.train import DEFAULTS as RNN

    assert MNIST_KD == schema.defaults("distill_mnist") and FIGURE_DEFAULTS == schema.defaults("rnn", "figures")
    assert RNN == schema.defaults("rnn", keys=tuple(RNN))
    assert DATASET_DEFAULTS == schema.defaults("distill_feedback", "datasets", "*")
    assert VARIANT_DEFAULTS == schema.defaults("distill_feedback", "datasets", "*", "variants", "*")
