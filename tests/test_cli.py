"""The command-line entry point: clear errors, never a traceback."""

from __future__ import annotations

import torch

from xaipipe.cli import main
from xaipipe.models import TextCNN, save_checkpoint


def make_model(tmp_path):
    vocab = ["<pad>", "space", "orbit", "car", "engine"]
    emb = torch.randn(len(vocab), 8)
    emb[0] = 0
    model = TextCNN(emb, n_classes=2, channels=4, hidden=[], dropout=0.0)
    path = tmp_path / "model.pt"
    kwargs = {"n_classes": 2, "channels": 4, "kernel_size": 5, "hidden": [], "dropout": 0.0}
    save_checkpoint(path, "text_cnn", kwargs, model, {"vocab": vocab, "classes": ["sci", "autos"],
                                                       "tokenizer": {"lowercase": True}})
    return path


def test_predict_prints_classes(tmp_path, capsys):
    path = make_model(tmp_path)
    assert main(["predict", "--model", str(path), "The SPACE orbit, and an unknown-word"]) == 0
    out = capsys.readouterr().out
    assert "2 known words" in out and "sci" in out and "autos" in out


def test_predict_errors_are_one_line(tmp_path, capsys):
    path = make_model(tmp_path)
    cases = [
        (["predict", "--model", str(path), "   "], "empty"),
        (["predict", "--model", str(path), "!!! ???"], "no word tokens"),
        (["predict", "--model", str(path), "zebra quokka"], "vocabulary"),
        (["predict", "--model", str(tmp_path / "missing.pt"), "space"], "not found"),
    ]
    for argv, fragment in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err, err
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    assert main(["predict", "--model", str(tmp_path / "garbage.pt"), "space"]) == 2
    assert "not a readable xaipipe checkpoint" in capsys.readouterr().err


def test_stdin_text_and_non_utf8_bytes(tmp_path, capsys, monkeypatch):
    import io

    path = make_model(tmp_path)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("space orbit".encode())))
    assert main(["predict", "--model", str(path), "-"]) == 0
    assert "2 known words" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9 space")))
    assert main(["explain", "--model", str(path), "--method", "occlusion", "-"]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "Traceback" not in err


def test_explain_parameter_target_and_output_errors_are_one_line(tmp_path, capsys):
    """Bad --params (not an object, wrong type, NaN, unknown name), a target that is no class and an
    output folder that does not exist: one line naming the problem, exit status 2, nothing computed."""
    path = make_model(tmp_path)
    base = ["explain", "--model", str(path)]
    cases = [
        (["--method", "lime", "--params", "[1,2]"], "--params must be a JSON object"),
        (["--method", "rde", "--params", '{"steps": "abc"}'], '--params: steps = "abc" must be an integer >= 1'),
        (["--method", "rde", "--params", '{"lr": NaN}'], "--params: lr = NaN must be a number > 0"),
        (["--method", "lime", "--params", '{"foo": 1}'], "--params: foo is an unknown parameter of lime"),
        (["--method", "shap", "--params", '{"num_samples": 10}'],
         "--params: num_samples is an unknown parameter of shap"),
        (["--method", "occlusion", "--target", "99"], "--target 99 is not a class of the model: give 0 to 1"),
        (["--method", "occlusion", "--png", str(tmp_path / "missing" / "h.png")], "does not exist"),
        (["--method", "occlusion", "--html", str(tmp_path / "missing" / "h.html")], "does not exist"),
        (["--method", "rde", "--params", '{"method": "lime"}'], "--params names a method ('lime')"),
        (["--method", "limes"], "unknown explanation method 'limes' (did you mean 'lime'?)"),
    ]
    for args, fragment in cases:
        assert main(base + args + ["space orbit car"]) == 2, args
        captured = capsys.readouterr()
        err = captured.err
        assert fragment in err and "Traceback" not in err and err.count("\n") == 1, err
        assert "method " not in captured.out  # refused before anything was explained
    assert not (tmp_path / "missing").exists()
    assert main(["predict", "--model", str(path), "--top", "0", "space"]) == 2
    assert "--top must be at least 1, not 0" in capsys.readouterr().err


def test_explain_with_valid_params_still_runs(tmp_path, capsys):
    path = make_model(tmp_path)
    out = tmp_path / "h.html"
    assert main(["explain", "--model", str(path), "--method", "lime", "--params", '{"num_samples": 20}',
                 "--target", "1", "--html", str(out), "space orbit car"]) == 0
    assert "method lime: target class autos" in capsys.readouterr().out and out.is_file()
