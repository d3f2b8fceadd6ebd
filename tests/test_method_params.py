"""The declared parameters of the explanation methods (xaipipe.method_params): one torch-free source of the
defaults and of the checks that run before any job, in the explainers and in ``xaipipe explain``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xaipipe.errors import ConfigError, XaipipeError
from xaipipe.method_params import METHOD_PARAMS, check_params, check_variant, declared_methods, defaults

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    from conftest import random_text_cnn

    return random_text_cnn(20, 6, 3)


def accepted(name: str, model) -> set[str]:
    """The parameter names the registered explainer accepts: the 'known: ...' list of its error for an
    unknown parameter (every explainer refuses unknown names, base.py's convention)."""
    from xaipipe.explain import get_explainer

    with pytest.raises(XaipipeError) as err:
        get_explainer(name, model, zz_not_a_parameter=1)
    known = re.search(r"known: (.*)$", str(err.value)).group(1)
    return set() if known == "none" else set(known.split(", "))


def test_every_registered_method_is_declared_and_nothing_else():
    from xaipipe.explain import METHODS

    assert set(declared_methods()) == {m for m in METHODS if not m.startswith("_")}


def test_builtin_table_names_the_module_that_registers_each_method():
    """explain.base.BUILTIN (name -> module, imported on first use) is complete and points at the module
    whose @register adds the name: a wrong or missing line fails here, not in a job."""
    from xaipipe.explain import BUILTIN, methods

    registered = methods()
    assert {m for m in registered if not m.startswith("_")} == set(BUILTIN)
    for name, module in BUILTIN.items():
        assert registered[name].__module__ == f"xaipipe.explain.{module}", name


def test_method_libraries_are_imported_on_first_use_only():
    """Importing the explain package or the evaluation stage imports none of Zennit, Captum, lime, shap
    (seconds each: every evaluation job paid them); asking for a method imports its module."""
    code = ("import sys, xaipipe.explain, xaipipe.evaluate.stage\n"
            "heavy = ('zennit', 'captum', 'lime', 'shap')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "from conftest import random_text_cnn\n"
            "xaipipe.explain.get_explainer('lrp_epsilon', random_text_cnn(20, 6, 3))\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "['zennit']", out


@pytest.mark.parametrize("name", sorted(METHOD_PARAMS))
def test_declaration_equals_what_the_explainer_accepts(name, model):
    """The declared names (less those the explain stage consumes) are exactly the explainer's parameters,
    and the explainer takes every declared default: the two cannot drift apart."""
    from xaipipe.explain import get_explainer

    declared = set(defaults(name))
    assert accepted(name, model) == declared
    get_explainer(name, model, **defaults(name))


@pytest.mark.parametrize("name", ["integrated_gradients", "occlusion", "lrp_epsilon", "lrp_zbox", "lime", "shap"])
def test_explainers_read_their_defaults_from_the_declaration(name, model, monkeypatch):
    from xaipipe.explain import get_explainer

    first = next(k for k, p in METHOD_PARAMS[name].items() if p.kind in ("int", "number") and k != "seed")
    changed = METHOD_PARAMS[name][first].__class__(**{**METHOD_PARAMS[name][first].__dict__,
                                                      "default": METHOD_PARAMS[name][first].default * 2})
    monkeypatch.setitem(METHOD_PARAMS[name], first, changed)
    assert get_explainer(name, model).params[first] == changed.default


@pytest.mark.parametrize("variant, message", [
    ({"method": "lime", "num_samples": 50, "foo_bar": 1},
     "config: planted.explain.methods.v.foo_bar is an unknown parameter of lime; known: batch_size, "
     "kernel_width, max_words, num_features, num_samples, output, seed"),
    ({"method": "integrated_gradients", "n_steps": "abc"},
     'config: planted.explain.methods.v.n_steps = "abc" must be an integer >= 1'),
    ({"method": "lime", "num_samples": -50},
     "config: planted.explain.methods.v.num_samples = -50 must be an integer >= 2"),
    ({"method": "lrp_epsilon", "epsilon": -1}, "config: planted.explain.methods.v.epsilon = -1 must be a number > 0"),
    ({"method": "rde", "lr": float("nan")}, "config: planted.explain.methods.v.lr = NaN must be a number > 0"),
    ({"method": "rde", "steps": True}, "config: planted.explain.methods.v.steps = true must be an integer >= 1"),
    ({"method": "rde", "loss": "l3"}, 'config: planted.explain.methods.v.loss = "l3" must be one of "l1", "l2", "l4"'),
    ({"method": "rde", "init": 1.5}, "config: planted.explain.methods.v.init = 1.5 must be a number in [0, 1]"),
    ({"method": "rde", "fixed_from": "l4", "loss": "l4"}, "loss = \"l4\" must be l1 or l2 with fixed_from: l4"),
    ({"method": "rde", "adaptive": True, "lam": 0.0}, "lam = 0.0 must be > 0 with adaptive lambda"),
    ({"method": "shap", "algorithm": "kernel"}, 'algorithm = "kernel" must be one of "partition", "permutation"'),
    ({"method": "lrp_zbox", "low": [1, "x"]},
     "low = [1, \"x\"] must be a number or a non-empty list of numbers or null"),
    ({"method": "greedy", "candidate_method": "rde", "candidate_params": {"steps": 0}},
     "config: planted.explain.methods.v.candidate_params.steps = 0 must be an integer >= 1"),
    ({"method": "greedy", "candidate_method": "lrp_zplus", "candidate_params": {"epsilon": 0.1}},
     "candidate_params.epsilon is an unknown parameter of lrp_zplus"),
    ({"method": "greedy", "candidate_method": "rde", "candidate_params": {"neutral_words": ["a"]}},
     "candidate_params.neutral_words is an unknown parameter of rde"),
    ({"method": "greedy", "candidate_method": "greedy"}, "candidate_method = \"greedy\" must be a registered"),
    ({"method": "greedy", "candidates": "top"}, 'candidates = "top" needs candidate_method'),
    ({"method": "greedy", "k": 3, "method_": 1}, "method_ is an unknown parameter of greedy"),
    ({"method": "limee"}, "'limee' is not a known explanation method (did you mean 'lime'?)"),
])
def test_bad_variants_are_one_line_naming_the_key(variant, message):
    with pytest.raises(ConfigError) as err:
        check_variant("planted", "v", variant)
    text = str(err.value)
    assert message in text and "\n" not in text, text


def test_shipped_variants_pass():
    for cfg in ("config.yaml", "config/paper.yaml"):
        data = yaml.safe_load((ROOT / cfg).read_text())
        for d, section in data.items():
            if isinstance(section, dict) and "explain" in section and "methods" in section["explain"]:
                for v, m in section["explain"]["methods"].items():
                    if "method" in m:  # paper.yaml only overrides parameters of config.yaml's variants
                        check_variant(d, v, m)
                    else:
                        base = yaml.safe_load((ROOT / "config.yaml").read_text())["planted"]["explain"]["methods"]
                        check_variant(d, v, {**base[v], **m})


def test_unknown_parameter_suggests_the_closest():
    with pytest.raises(ConfigError,
                       match=r"num_sample is an unknown parameter of lime \(did you mean 'num_samples'\?\)"):
        check_params("lime", {"num_sample": 10}, "x.")


def test_explainer_errors_use_the_declaration(model):
    from xaipipe.explain import get_explainer

    with pytest.raises(XaipipeError, match=r"^lime: num_samples = -50 must be an integer >= 2$"):
        get_explainer("lime", model, num_samples=-50)
    with pytest.raises(XaipipeError, match=r"^integrated_gradients: n_steps = \"abc\" must be an integer >= 1$"):
        get_explainer("integrated_gradients", model, n_steps="abc")


def test_declarations_import_no_torch():
    code = "import sys, xaipipe.method_params; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_snakefile_parse_imports_no_torch(tmp_path):
    """A dry run of the text stages (explain variants, custom datasets, feedback distillation) never loads
    torch while the Snakefile is parsed: checking the variants costs milliseconds, not seconds per job."""
    overlay = tmp_path / "text_only.yaml"
    overlay.write_text(yaml.safe_dump({"rnn": None, "xdistill": None, "distill_mnist": None}))
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory",
         str(tmp_path), "--configfile", str(ROOT / "config.yaml"), str(overlay)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "xaipipe.method_params" in imported  # the variants were checked
    assert not {"torch", "captum", "zennit"} & imported, sorted(m for m in imported if "torch" in m)[:5]
