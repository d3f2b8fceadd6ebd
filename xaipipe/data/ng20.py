"""20 Newsgroups (bydate): read messages from the extracted tree or straight from the tar.gz."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Iterator

GROUPS = (
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
    "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med", "sci.space",
    "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast", "talk.politics.misc",
    "talk.religion.misc",
)


def _decode(raw: bytes) -> str:
    return raw.decode("latin-1")  # the bydate files are latin-1 bytes; latin-1 never fails


def iter_tree(root: str | Path) -> Iterator[tuple[str, str, str]]:
    """Yield ``(doc_id, group, text)`` for every message below an extracted split folder."""
    root = Path(root)
    for group_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(group_dir.iterdir(), key=lambda p: p.name):
            if f.is_file():
                yield f"{group_dir.name}/{f.name}", group_dir.name, _decode(f.read_bytes())


def iter_archive(archive: str | Path, split_folder: str) -> Iterator[tuple[str, str, str]]:
    """Yield ``(doc_id, group, text)`` for the messages of ``split_folder`` inside the tar.gz."""
    items = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = Path(member.name).parts
            if split_folder not in parts:
                continue
            i = parts.index(split_folder)
            if len(parts) != i + 3:
                continue
            group, name = parts[i + 1], parts[i + 2]
            fh = tar.extractfile(member)
            assert fh is not None
            items.append((f"{group}/{name}", group, _decode(fh.read())))
    items.sort(key=lambda t: (t[1], t[0]))
    yield from items


def iter_split(item: dict, split_folder: str) -> Iterator[tuple[str, str, str]]:
    """Dispatch on a manifest item (extracted tree or archive)."""
    if item.get("kind") == "archive":
        return iter_archive(item["path"], split_folder)
    return iter_tree(item["path"])
