"""Atomic writers and write-failure errors (xaipipe.io, xaipipe.errors, xaipipe.pipeline.run)."""

from __future__ import annotations

import errno
import logging
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from xaipipe.errors import StorageError, storage_error
from xaipipe.io import atomic_path, write_json, write_text

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"x": 1})
    before = target.read_bytes()
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ValueError("interrupted")
    assert target.read_bytes() == before  # the finished output is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]  # no temporary file left


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EFBIG, "disk is full"),
                                         (errno.EACCES, "not writable"), (errno.EROFS, "not writable")])
def test_write_failures_become_storage_errors_naming_path_and_fix(tmp_path, code, words):
    target = tmp_path / "out.txt"
    target.write_text("finished earlier")
    with pytest.raises(StorageError) as info:
        with atomic_path(target):
            raise OSError(code, "simulated")
    msg = str(info.value)
    assert str(target) in msg and words in msg.lower() and "rerun" in msg
    assert target.read_text() == "finished earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_other_errors_are_not_disguised_as_storage_errors(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x"):
            raise KeyError("bug")
    assert storage_error(OSError(errno.ENOENT, "missing")) is None
    assert storage_error(RuntimeError("shape mismatch")) is None
    assert isinstance(storage_error(RuntimeError("[enforce fail] PytorchStreamWriter failed writing file")),
                      StorageError)


def test_a_file_in_the_way_of_the_results_folder(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(StorageError, match="in the way"):
        write_text(tmp_path / "results" / "ng20" / "stats.json", "{}")


def test_file_size_limit_is_reported_as_a_full_disk(tmp_path):
    """A real EFBIG (RLIMIT_FSIZE stands in for a full disk): numpy, pandas and torch writers all end in a
    StorageError, and the target keeps its earlier content."""
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np, pandas as pd, torch
        from xaipipe.errors import StorageError
        from xaipipe.io import atomic_path
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        big = np.random.default_rng(0).random(100_000)
        writers = {{"a.npy": lambda p: np.save(p, big), "a.parquet": lambda p: pd.DataFrame({{"x": big}}).to_parquet(p),
                    "a.pt": lambda p: torch.save(torch.from_numpy(big), p)}}
        for name, write in writers.items():
            try:
                with atomic_path(r"{tmp_path}/" + name) as tmp:
                    write(tmp)
            except StorageError as exc:
                print(name, "StorageError", "disk is full" in str(exc).lower())
            else:
                print(name, "written")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == [f"{n} StorageError True" for n in ("a.npy", "a.parquet", "a.pt")]
    assert not list(tmp_path.iterdir())


@pytest.mark.usefixtures("restore_torch_state")  # run() seeds and sets deterministic kernels
def test_run_ends_a_job_with_one_clear_line_for_write_failures(tmp_path, caplog):
    from xaipipe.pipeline import run

    def job(log):
        with atomic_path(tmp_path / "results" / "x.parquet"):
            raise OSError(errno.ENOSPC, "No space left on device")

    smk = SimpleNamespace(log=[str(tmp_path / "job.log")], threads=1, rule="demo")
    with pytest.raises(SystemExit) as info:
        run(smk, job)
    assert info.value.code == 1
    text = (tmp_path / "job.log").read_text()
    assert "No space left on device" in text and "x.parquet" in text and "Traceback" not in text
    logging.getLogger().handlers.clear()

    (tmp_path / "logs").write_text("a file where the log folder should be")
    smk = SimpleNamespace(log=[str(tmp_path / "logs" / "job.log")], threads=1, rule="demo")
    with pytest.raises(SystemExit):  # the log file itself cannot be opened
        run(smk, job)


# --- damaged inputs: one check and one reader per format -------------------------------------------------

def _good_files(folder: Path) -> dict[str, Path]:
    import numpy as np
    import pandas as pd
    import torch

    files = {"parquet": folder / "t.parquet", "npy": folder / "v.npy", "npz": folder / "d.npz",
             "json": folder / "s.json", "pt": folder / "m.pt"}
    pd.DataFrame({"tokens": [["a", "b"], ["c"]], "label": [0, 1]}).to_parquet(files["parquet"])
    np.save(files["npy"], np.arange(200, dtype=np.float32).reshape(50, 4))
    np.savez(files["npz"], x=np.zeros((20, 28), np.uint8), y=np.arange(20))
    files["json"].write_text('{"classes": ["a", "b"]}')
    torch.save({"w": torch.zeros(100)}, files["pt"])
    return files


def test_check_file_tells_truncated_files_from_good_ones(tmp_path):
    from xaipipe.io import check_file

    for kind, path in _good_files(tmp_path).items():
        assert check_file(path) is None, kind
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        assert check_file(path), kind
    assert check_file(tmp_path / "missing.parquet") is None and check_file(tmp_path) is None


def test_readers_turn_damaged_files_into_one_line_naming_the_rule(tmp_path):
    from xaipipe.errors import UnreadableFileError
    from xaipipe.io import load_npy, load_npz, read_json, read_parquet

    files = _good_files(tmp_path)
    assert list(read_parquet(files["parquet"], rule="r", columns=["label"])["label"]) == [0, 1]
    assert load_npy(files["npy"]).shape == (50, 4) and list(load_npz(files["npz"], keys=["y"])) == ["y"]
    assert read_json(files["json"]) == {"classes": ["a", "b"]}
    readers = {"parquet": read_parquet, "npy": load_npy, "npz": load_npz, "json": read_json}
    for kind, reader in readers.items():
        data = files[kind].read_bytes()
        files[kind].write_bytes(data[: len(data) // 2])
        with pytest.raises(UnreadableFileError) as err:
            reader(files[kind], rule="prepare_text")
        msg = str(err.value)
        assert msg.startswith(f"{files[kind]} is damaged or truncated (") and "\n" not in msg, msg
        assert "it is an output of rule prepare_text" in msg and f"--forcerun {files[kind]}" in msg
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "missing.parquet")
