"""Shared fixtures: small data files written in the OFFICIAL formats of the three datasets.

* 20 Newsgroups "bydate": ``20news-bydate-{train,test}/<group>/<id>`` latin-1 messages with a header
  block, a quoted reply ("In article <...> x writes:" and "> " lines) and a "--" signature; the same
  tree packed as ``20news-bydate.tar.gz`` with members ``20news-bydate-train/...``.
* AG News: CSV without header, 3 double-quoted fields (class 1-4, title, description) with the
  original garbage (``#36;``, ``#39;``, bare ``quot;``, ``&lt;b&gt;``, ``\\$``, ``<TXN.N>``) and a bare
  backslash where the text had a line break (``dwindling\\band``).
* MNIST: IDX files (magic ``0x00000803`` images / ``0x00000801`` labels, big-endian dimensions), gzipped.

Builders are exposed as fixtures that return callables, so a test can write the files where it needs
them (raw folder, mirror, ...).
"""

from __future__ import annotations

import csv
import gzip
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

# --- environment ------------------------------------------------------------------------------------


@pytest.fixture
def no_xaipipe_env(monkeypatch):
    """Remove the environment variables that change data resolution (mirror, offline mode)."""
    monkeypatch.delenv("XAIPIPE_DATA_MIRROR", raising=False)
    monkeypatch.delenv("XAIPIPE_OFFLINE", raising=False)


@pytest.fixture
def torch_single_thread():
    """Run torch on one thread. On a small, busy machine two OpenMP threads that wait for each other
    make tiny convolutions ~100x slower than one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def restore_torch_state(monkeypatch):
    """``set_seed`` switches on deterministic algorithms (and seeds torch) process-wide: put both back
    afterwards so that later tests see the state they started with."""
    import torch

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    rng_state = torch.get_rng_state()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.set_rng_state(rng_state)


# --- 20 Newsgroups ----------------------------------------------------------------------------------

NG20_TOPICS = {
    "alt.atheism": ["god", "belief", "argument", "religion", "morality", "evidence", "faith", "atheist"],
    "rec.autos": ["engine", "car", "dealer", "brakes", "transmission", "mileage", "sedan", "tires"],
    "sci.space": ["orbit", "shuttle", "launch", "nasa", "satellite", "rocket", "lunar", "payload"],
}

# message ids per split and group; "9" and "10" (and ids of different width) make string order differ
# from numeric order, as in the official tree
NG20_IDS = {
    "20news-bydate-train": {
        "alt.atheism": ["49960", "51060", "9", "10", "53068"],
        "rec.autos": ["101551", "101552", "101553", "99"],
        "sci.space": ["59497", "59848", "60154", "61000"],
    },
    "20news-bydate-test": {
        "alt.atheism": ["53257", "53260"],
        "rec.autos": ["103007", "103008"],
        "sci.space": ["61542", "61543"],
    },
}

# the one message that is empty after cleaning: no Subject, only a quoted reply and a signature
NG20_EMPTY = ("20news-bydate-train", "alt.atheism", "10")
# a message with CRLF line ends (the real tree has 5 files with CR characters)
NG20_CRLF = ("20news-bydate-test", "sci.space", "61543")


def ng20_message(group: str, doc_id: str, i: int) -> bytes:
    """One message in the bydate format, encoded latin-1 (with non-ASCII characters)."""
    words = NG20_TOPICS[group]
    topic = " ".join(words[(i + k) % len(words)] for k in range(6))
    if (NG20_EMPTY[1], NG20_EMPTY[2]) == (group, doc_id):
        text = (
            f"From: quiet{doc_id}@example.edu (Silent Reader)\n"
            "Organization: Example University\n"
            "Lines: 4\n"
            "\n"
            "In article <1993Apr5.123456.1@example.edu> loud@example.edu (Loud Poster) writes:\n"
            "> Everything I say is quoted.\n"
            "> Nothing else is in this message.\n"
        )
    else:
        text = (
            f"From: user{doc_id}@cs.example.edu (Jos\xe9 M\xfcller)\n"
            f"Subject: Re: Re: {words[i % len(words)]} question number {i}\n"
            "Organization: Universit\xe9 de Montr\xe9al\n"
            "Lines: 14\n"
            "\n"
            f"In article <1993Apr{i + 1}.000000.{doc_id}@news.example.com> other@example.com "
            "(Other Person) writes:\n"
            "> quotedonlyword previous message text\n"
            "> more quotedonlyword text\n"
            "\n"
            f"I think the {topic} matters na\xefve caf\xe9 discussion.\n"
            f"Also {words[(i + 3) % len(words)]} and {words[(i + 5) % len(words)]} are relevant here.\n"
            "\n"
            "--\n"
            "Jos\xe9 M\xfcller  | signatureonlyword@cs.example.edu\n"
            '"Disclaimer: signatureonlyword opinions are mine"\n'
        )
    if (NG20_CRLF[1], NG20_CRLF[2]) == (group, doc_id):
        text = text.replace("\n", "\r\n")
    return text.encode("latin-1")


def build_ng20_tree(base: Path) -> Path:
    """Write ``base/20news-bydate-{train,test}/<group>/<id>``; return ``base``."""
    for split, groups in NG20_IDS.items():
        for group, ids in groups.items():
            folder = base / split / group
            folder.mkdir(parents=True, exist_ok=True)
            for i, doc_id in enumerate(ids):
                (folder / doc_id).write_bytes(ng20_message(group, doc_id, i))
    return base


def pack_ng20_archive(tree: Path, archive: Path) -> Path:
    """Pack the split folders of ``tree`` as the official ``20news-bydate.tar.gz`` (members
    ``20news-bydate-train/...`` and ``20news-bydate-test/...``, directories included)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("20news-bydate-train", "20news-bydate-test"):
            tar.add(tree / split, arcname=split)
    return archive


@pytest.fixture
def ng20_layout():
    """``{split: {group: [ids]}}`` of the fixture tree, and the (split, group, id) of special messages."""
    return {"ids": NG20_IDS, "empty": NG20_EMPTY, "crlf": NG20_CRLF, "topics": NG20_TOPICS}


@pytest.fixture
def ng20_tree(tmp_path) -> Path:
    """A ``20news-bydate`` folder holding ``20news-bydate-train/`` and ``20news-bydate-test/``."""
    return build_ng20_tree(tmp_path / "ng20src" / "20news-bydate")


@pytest.fixture
def ng20_archive(tmp_path, ng20_tree) -> Path:
    """``20news-bydate.tar.gz`` with the same messages as :func:`ng20_tree`."""
    return pack_ng20_archive(ng20_tree, tmp_path / "ng20archive" / "20news-bydate.tar.gz")


@pytest.fixture
def copy_tree():
    def copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    return copy


# --- AG News ----------------------------------------------------------------------------------------

AG_TOPICS = {
    1: ["president", "minister", "election", "troops", "embassy", "parliament"],
    2: ["coach", "league", "playoff", "striker", "olympic", "tournament"],
    3: ["profit", "shares", "merger", "investors", "quarterly", "earnings"],
    4: ["software", "internet", "processor", "browser", "researchers", "wireless"],
}

# (garbage as written in the official CSV, what clean_agnews must turn it into)
AG_GARBAGE = [
    ("costs #36;5 billion", "costs $5 billion"),
    ("it#39;s over", "it's over"),
    ("said quot;no comment quot; today", 'said "no comment " today'),
    ("&lt;b&gt;Breaking&lt;/b&gt; news", "Breaking news"),
    ("up \\$2 to close", "up $2 to close"),
    ("Texas Instruments <TXN.N> rose", "Texas Instruments rose"),
]


def agnews_rows(per_class: int = 10, with_empty: bool = False) -> list[tuple[int, str, str]]:
    """Rows ``(class 1-4, title, description)`` with class-specific words and the CSV garbage."""
    rows = []
    for i in range(per_class):
        for cls, words in AG_TOPICS.items():
            garbage = AG_GARBAGE[(i + cls) % len(AG_GARBAGE)][0]
            title = f"{words[i % 6].title()} {words[(i + 1) % 6]} report {i}"
            # a bare backslash is how the official file marks a line break inside a field
            desc = f"The {words[(i + 2) % 6]} and\\{words[(i + 3) % 6]} story: {garbage}."
            rows.append((cls, title, desc))
    if with_empty:
        rows.append((1, "", ""))
    return rows


def write_agnews_csv(path: Path, rows) -> Path:
    """Write rows like the official file: no header, every field double-quoted, ``\\n`` line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for cls, title, desc in rows:
            writer.writerow([str(cls), title, desc])
    return path


@pytest.fixture
def ag_garbage():
    return list(AG_GARBAGE)


@pytest.fixture
def make_agnews_rows():
    return agnews_rows


@pytest.fixture
def make_agnews_csv():
    """``make_agnews_csv(path, rows=None, per_class=10, with_empty=False) -> path``."""

    def make(path: Path, rows=None, per_class: int = 10, with_empty: bool = False) -> Path:
        return write_agnews_csv(Path(path), rows if rows is not None else agnews_rows(per_class, with_empty))

    return make


# --- MNIST ------------------------------------------------------------------------------------------

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
              np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding: ``00 00 <type> <ndim>``, big-endian uint32 dimensions, big-endian data."""
    array = np.asarray(array)
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    code = _IDX_CODES[np.dtype(big.dtype)]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + big.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def make_idx():
    """``make_idx(path, array) -> path`` (gzip-compressed when the name ends in .gz)."""
    return write_idx


@pytest.fixture
def make_idx_bytes():
    return idx_bytes


@pytest.fixture
def mnist_arrays():
    """Small MNIST-shaped arrays: 50 train (5 per class) and 20 test (2 per class) 28 x 28 uint8 images."""
    rng = np.random.default_rng(123)
    y_tr = np.repeat(np.arange(10, dtype=np.uint8), 5)
    y_te = np.repeat(np.arange(10, dtype=np.uint8), 2)
    rng.shuffle(y_tr)
    rng.shuffle(y_te)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": y_tr,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": y_te,
    }


@pytest.fixture
def mnist_files(tmp_path, mnist_arrays) -> dict[str, Path]:
    """The four official MNIST file names, written as gzipped IDX files into ``tmp_path/mnist``."""
    return {name: write_idx(tmp_path / "mnist" / name, arr) for name, arr in mnist_arrays.items()}


def random_text_cnn(n_vocab: int, emb_dim: int, n_classes: int, hidden: tuple[int, ...] = ()):
    """A seeded random TextCNN (16 channels, kernel 3, random conv biases) in eval mode; vocabulary id 0
    is the zero vector, so the padding id doubles as a deleted word."""
    import torch

    from xaipipe.models import TextCNN

    g = torch.Generator().manual_seed(0)
    emb = torch.randn(n_vocab, emb_dim, generator=g)
    emb[0] = 0.0
    torch.manual_seed(0)
    m = TextCNN(emb, n_classes, channels=16, kernel_size=3, hidden=list(hidden), dropout=0.5)
    with torch.no_grad():
        m.conv.bias.uniform_(-0.5, 0.5)
    return m.eval()
