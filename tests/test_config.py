"""The JSON schema: every shipped config validates; bad values stop the run naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "config" / "schema.yaml")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def merged(overlay: str) -> dict:
    base = load("config.yaml")

    def merge(a, b):
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = v
        return a

    return merge(base, load(overlay))


@pytest.mark.parametrize("cfg", ["config.yaml", "config/tiny.yaml", "config/paper.yaml"])
def test_shipped_configs_validate(cfg):
    config = load(cfg) if cfg == "config.yaml" else merged(cfg)
    validate(config, SCHEMA, set_default=True)
    for d in config["datasets"]:
        assert config[d]["models"], d


def test_defaults_are_filled():
    config = {"datasets": ["mnist"], "mnist": {"models": {"teacher": {
        "hidden": [8], "epochs": 1, "batch_size": 4, "lr": 0.1}}}}
    validate(config, SCHEMA, set_default=True)
    assert config["seed"] == 0 and config["device"] == "auto"
    assert config["mnist"]["models"]["teacher"]["val_fraction"] == 0.1


@pytest.mark.parametrize("path,value,fragment", [
    (("seed",), -1, "minimum"),
    (("threads",), "two", "is not of type"),
    (("bogus_key",), 1, "bogus_key"),
    (("datasets",), [], "should be non-empty"),
    (("datasets",), ["Imagenet"], "Imagenet"),  # names are identifiers; one without a section: common.smk
    (("ng20", "models", "teacher", "channels"), -5, "minimum"),
    (("ng20", "models", "teacher", "chanels"), 5, "chanels"),
    (("ng20", "embedding", "kind"), "glove", "glove"),
    (("agnews", "data", "resplit_from_test"), "maybe", "maybe"),
    (("mnist", "models", "student", "dropout"), 1.5, "dropout"),
    (("device",), "tpu", "tpu"),
])
def test_bad_values_rejected(path, value, fragment):
    config = copy.deepcopy(load("config.yaml"))
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(Exception) as err:
        validate(config, SCHEMA, set_default=True)
    msg = str(err.value)
    assert fragment in msg or fragment in repr(getattr(err.value, "__cause__", "")), msg


def test_snakemake_stops_before_any_job_naming_the_key(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--config", "seed=-3"], capture_output=True, text=True)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "seed" in out and "minimum" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("overlay,fragment", [
    ({"planted": {"explain": {"methods": {"mystery": {"method": "no_such_method"}}}}}, "no_such_method"),
    ({"planted": {"explain": {"models": ["ghost"]}}}, "ghost"),
    ({"datasets": ["imagenet"]}, "has no 'imagenet:' section"),
    ({"datasets": ["mine"], "mine": {"data": {}}}, "'kind' is a required property"),
    ({"planted": {"explain": {"methods": {"Bad-Name": {"method": "lime"}}}}}, "Bad-Name"),
    # parameters are checked against the method's declaration (xaipipe/method_params.py), not in the job
    ({"planted": {"explain": {"methods": {"lime": {"num_samples": 50, "foo_bar": 1}}}}},
     "config: planted.explain.methods.lime.foo_bar is an unknown parameter of lime"),
    ({"planted": {"explain": {"methods": {"integrated_gradients": {"n_steps": "abc"}}}}},
     'config: planted.explain.methods.integrated_gradients.n_steps = "abc" must be an integer >= 1'),
    ({"planted": {"explain": {"methods": {"lime": {"num_samples": -50}}}}},
     "config: planted.explain.methods.lime.num_samples = -50 must be an integer >= 2"),
    ({"planted": {"explain": {"methods": {"lrp_epsilon": {"epsilon": -1}}}}},
     "config: planted.explain.methods.lrp_epsilon.epsilon = -1 must be a number > 0"),
    ({"planted": {"explain": {"methods": {"greedy_gl2": {"candidate_params": {"steps": 0}}}}}},
     "config: planted.explain.methods.greedy_gl2.candidate_params.steps = 0 must be an integer >= 1"),
])
def test_explain_config_errors_stop_before_any_job(tmp_path, overlay, fragment):
    ov = tmp_path / "overlay.yaml"
    ov.write_text(yaml.safe_dump(overlay))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml"), str(ov)], capture_output=True, text=True)
    assert res.returncode != 0
    assert fragment in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("overlay,message", [
    ({"sedd": 3}, "config: unknown top-level key 'sedd' (did you mean 'seed'?)"),
    ({"ofline": True}, "config: unknown top-level key 'ofline' (did you mean 'offline'?)"),
    ({"resourcess": {"gpu": 1}}, "config: unknown top-level key 'resourcess' (did you mean 'resources'?)"),
    ({"datasets": ["planted", "reviews"], "reviewz": {"data": {"path": "x.csv"}}},  # the listed section misspelled
     "config: unknown top-level key 'reviewz' (did you mean 'reviews'?)"),
])
def test_unknown_top_level_keys_are_named_with_the_closest_key(tmp_path, overlay, message):
    """A typo at the top level is not taken for a custom dataset section (no schema dump), before any job."""
    ov = tmp_path / "overlay.yaml"
    ov.write_text(yaml.safe_dump(overlay))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml"), str(ov)], capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and message in out, out[-3000:]
    assert "custom_dataset" not in out and "text_columns" not in out and "is not valid under" not in out
    assert not (tmp_path / "results").exists()


def test_custom_sections_not_listed_under_datasets_are_still_allowed():
    from xaipipe.config_checks import check_top_level_keys, schema_top_level_keys

    known = schema_top_level_keys(ROOT / "config" / "schema.yaml")
    check_top_level_keys({"datasets": ["mine"], "mine": {"data": {}}, "later": {"kind": "custom"}, "seed": 1}, known)
