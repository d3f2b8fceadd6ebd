"""bench/compare_runs.py: the file-by-file check that a refactoring leaves a run's results unchanged."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "bench" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_identical_trees_pass_and_timing_is_ignored(tmp_path):
    a = tree(tmp_path / "a", {"x/metrics.json": b"{1}", "x/timing.json": b"3.1", "y.csv": b"1,2"})
    b = tree(tmp_path / "b", {"x/metrics.json": b"{1}", "x/timing.json": b"9.9", "y.csv": b"1,2"})
    assert compare_runs.main([str(a), str(b)]) == 0
    assert compare_runs.compare(a, b)["identical"] == ["x/metrics.json", "y.csv"]


def test_a_changed_byte_or_a_missing_file_fails(tmp_path, capsys):
    a = tree(tmp_path / "a", {"m/relevance.parquet": b"\x00\x01", "gone.txt": b"x", "same.txt": b"s"})
    b = tree(tmp_path / "b", {"m/relevance.parquet": b"\x00\x02", "new.txt": b"y", "same.txt": b"s"})
    res = compare_runs.compare(a, b)
    assert res == {"identical": ["same.txt"], "timing_only": [], "different": ["m/relevance.parquet"],
                   "only_before": ["gone.txt"], "only_after": ["new.txt"]}
    assert compare_runs.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "different    m/relevance.parquet" in out and "1 identical, 1 different" in out
    assert compare_runs.main([str(a), str(tmp_path / "nope")]) == 2


def test_wall_time_fields_are_left_out_only_when_asked(tmp_path):
    import torch

    a = tree(tmp_path / "a", {"m.json": b'{"acc": 0.5, "train_seconds": 1.0, "h": [{"seconds": 2}]}',
                              "h.csv": b"epoch,loss,seconds\n1,0.5,3.1\n", "c.json": b'{"acc": 0.5}'})
    b = tree(tmp_path / "b", {"m.json": b'{"acc": 0.5, "train_seconds": 9.0, "h": [{"seconds": 7}]}',
                              "h.csv": b"epoch,loss,seconds\n1,0.5,4.2\n", "c.json": b'{"acc": 0.6}'})
    torch.save({"w": torch.ones(2), "meta": {"train_seconds": 0.1}}, a / "model.pt")
    torch.save({"w": torch.ones(2), "meta": {"train_seconds": 0.2}}, b / "model.pt")
    assert compare_runs.compare(a, b)["different"] == ["c.json", "h.csv", "m.json", "model.pt"]
    res = compare_runs.compare(a, b, ignore_timing=True)
    assert res["timing_only"] == ["h.csv", "m.json", "model.pt"] and res["different"] == ["c.json"]
    torch.save({"w": torch.zeros(2), "meta": {"train_seconds": 0.2}}, b / "model.pt")  # other weights
    assert "model.pt" in compare_runs.compare(a, b, ignore_timing=True)["different"]
