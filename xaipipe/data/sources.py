"""Where raw data files come from: local raw folder, a mirror folder, or the official download.

Resolution order for every file a dataset needs (first hit wins):

1. the raw-data folder ``<raw_dir>/<dataset>/`` (files put there by hand or by an earlier download);
2. a mirror folder (environment variable ``XAIPIPE_DATA_MIRROR``, which overrides the config key
   ``data_mirror``), laid out like the official archives or as extracted trees such as
   ``../shared/datasets/``;
3. a download from the official location into the raw-data folder: retries with back-off, a progress
   bar, checksum verification and an atomic rename.

Every file is checked against its published checksum wherever it came from. Extracted trees (the
20 Newsgroups folders) are checked with a *tree digest*: the sha256 of the sorted lines
``"<sha256>  <prefix>/<relative path>"`` (the format of ``sha256sum``), which equals
``grep "  <prefix>/" SHA256SUMS | sha256sum`` over a ``SHA256SUMS`` file of the tree.
Offline with no source, :class:`~xaipipe.errors.DataUnavailableError` names each missing file, its
checksum and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import ChecksumError, DataUnavailableError
from ..io import atomic_path, file_digest

log = logging.getLogger(__name__)

MIRROR_ENV = "XAIPIPE_DATA_MIRROR"
OFFLINE_ENV = "XAIPIPE_OFFLINE"


@dataclass(frozen=True)
class FileSpec:
    """One raw file: its name in the raw folder, checksums, download URLs and mirror locations."""

    name: str
    sha256: str | None = None
    md5: str | None = None
    urls: tuple[str, ...] = ()
    mirror_names: tuple[str, ...] = ()
    size: int | None = None

    def checksum_text(self) -> str:
        parts = []
        if self.sha256:
            parts.append(f"sha256 {self.sha256}")
        if self.md5:
            parts.append(f"md5 {self.md5}")
        return ", ".join(parts) or "no published checksum"


@dataclass(frozen=True)
class TreeSpec:
    """An extracted folder of many files (20 Newsgroups), verified by a tree digest.

    ``archive`` names the :class:`FileSpec` (a tar.gz) that contains the same tree under ``prefix``.
    """

    name: str
    prefix: str
    digest: str
    n_files: int
    archive: str
    mirror_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSources:
    name: str
    files: tuple[FileSpec, ...] = ()
    trees: tuple[TreeSpec, ...] = ()
    notes: str = ""
    optional: frozenset[str] = field(default_factory=frozenset)

    def file(self, name: str) -> FileSpec:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)


def verify_file(path: Path, spec: FileSpec) -> str:
    """Check ``path`` against the spec's checksums; return its sha256. Raises :class:`ChecksumError`."""
    sha = file_digest(path, "sha256")
    if spec.sha256 and sha != spec.sha256:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {sha}. The file is "
            f"corrupt, truncated or a different version of {spec.name!r}. Replace it with the official "
            f"file (or delete it so that it is downloaded again); nothing downstream was changed."
        )
    if spec.md5:
        md5 = file_digest(path, "md5")
        if md5 != spec.md5:
            raise ChecksumError(
                f"checksum mismatch for {path}: expected md5 {spec.md5}, got {md5}. The file is corrupt, "
                f"truncated or a different version of {spec.name!r}. Replace it with the official file "
                f"(or delete it so that it is downloaded again); nothing downstream was changed."
            )
    return sha


def tree_digest(root: Path, prefix: str) -> tuple[str, int]:
    """sha256 over sorted ``"<sha256>  <prefix>/<relpath>"`` lines of every file below ``root``."""
    lines = []
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            p = Path(dirpath) / fname
            rel = p.relative_to(root).as_posix()
            lines.append(f"{file_digest(p)}  {prefix}/{rel}\n")
    lines.sort(key=lambda s: s.split("  ", 1)[1])
    return hashlib.sha256("".join(lines).encode()).hexdigest(), len(lines)


def verify_tree(root: Path, spec: TreeSpec) -> None:
    digest, n = tree_digest(root, spec.prefix)
    if digest != spec.digest:
        raise ChecksumError(
            f"tree checksum mismatch for {root}: expected {spec.n_files} files with tree digest "
            f"{spec.digest}, found {n} files with digest {digest}. Some files are missing, extra or "
            f"modified; replace the folder with an unmodified copy of {spec.name!r} (or remove it so "
            f"that the official archive is used)."
        )


def mirror_root(config_mirror: str | None) -> Path | None:
    """The mirror folder: ``XAIPIPE_DATA_MIRROR`` when it is set (and not empty), else the config key
    ``data_mirror`` -- the environment overrides the config file, so a shared config that names
    ``../shared/datasets`` runs anywhere with the variable set. None: no mirror."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    value, source = (env, MIRROR_ENV) if env else (config_mirror or None, "config key data_mirror")
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        fix = ("fix the path or unset it" if source == MIRROR_ENV else
               f"fix the path, set {MIRROR_ENV} (it overrides the config key), or set data_mirror: null")
        raise DataUnavailableError(f"data mirror {root} does not exist or is not a folder (set by {source}); {fix}.")
    return root


_TRUE, _FALSE = {"1", "true", "yes", "y", "on"}, {"0", "false", "no", "n", "off"}


def is_offline(config_offline: bool = False) -> bool:
    """``XAIPIPE_OFFLINE`` when it is set (and not empty): 1/true/yes/on or 0/false/no/off; else the config
    key ``offline``. The environment overrides the config file (``XAIPIPE_OFFLINE=0`` allows downloads for
    a config with ``offline: true``)."""
    env = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if not env:
        return bool(config_offline)
    if env in _TRUE:
        return True
    if env in _FALSE:
        return False
    raise DataUnavailableError(f"{OFFLINE_ENV}={os.environ[OFFLINE_ENV]!r} is neither 1 (offline) nor 0 (downloads "
                               f"allowed); fix or unset it")


def download(url: str, dest: Path, spec: FileSpec, retries: int = 3, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` with retries, a progress bar, checksum check and atomic rename."""
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "xaipipe/0.1"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, atomic_path(dest) as tmp:
                total = int(resp.headers.get("Content-Length") or 0) or spec.size
                with open(tmp, "wb") as out, tqdm(
                    total=total, unit="B", unit_scale=True, desc=f"download {spec.name}", leave=False
                ) as bar:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
                verify_file(tmp, spec)
            return dest
        except ChecksumError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as exc:  # network trouble: retry
            last = exc
            log.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, exc)
            if isinstance(exc, urllib.error.URLError) and "Name or service not known" in str(exc):
                break  # no DNS: retrying will not help
            if attempt < retries:
                time.sleep(min(2 ** attempt, 10))
    raise DataUnavailableError(f"could not download {url}: {last}")


def _find_in(root: Path, names: tuple[str, ...], is_dir: bool = False) -> Path | None:
    for rel in names:
        p = root / rel
        if (p.is_dir() if is_dir else p.is_file()):
            return p
    return None


def resolve(
    sources: DatasetSources,
    raw_dir: str | os.PathLike,
    mirror: str | None = None,
    offline: bool = False,
    optional: frozenset[str] | set[str] = frozenset(),
    verify: bool = True,
) -> dict:
    """Locate (and if needed download) every raw file of a dataset; return a manifest.

    The manifest maps each item name to ``{"path", "source", "sha256"|"tree_digest"}``; optional
    items that could not be found are listed under ``"missing_optional"``. Trees that are not found
    extracted are served from their archive (``"source": "archive"``).

    ``verify=False`` skips the checksum of local and mirrored files (for test fixtures or re-packed
    copies only; downloads are always verified); the manifest then says ``"verified": false``.
    """
    raw = Path(raw_dir) / sources.name
    root = mirror_root(mirror)
    offline = is_offline(offline)
    optional = set(optional) | set(sources.optional)
    manifest: dict = {"dataset": sources.name, "items": {}, "missing_optional": [], "verified": verify}
    if not verify:
        log.warning("checksum verification of local and mirrored files is OFF (verify_checksums: false)")

    def check(path: Path, spec: FileSpec) -> str:
        return verify_file(path, spec) if verify else file_digest(path)
    missing: list[str] = []

    def locate_file(spec: FileSpec, needed: bool) -> dict | None:
        local = raw / spec.name
        if local.is_file():
            return {"path": str(local.resolve()), "source": "local", "sha256": check(local, spec)}
        if root is not None:
            hit = _find_in(root, spec.mirror_names + (spec.name,))
            if hit is not None:
                return {"path": str(hit.resolve()), "source": "mirror", "sha256": check(hit, spec)}
        if not needed:
            return None
        if offline or not spec.urls:
            return None
        errors = []
        for url in spec.urls:
            try:
                log.info("downloading %s from %s", spec.name, url)
                download(url, local, spec)
                return {"path": str(local.resolve()), "source": "download", "url": url,
                        "sha256": file_digest(local)}
            except DataUnavailableError as exc:
                errors.append(str(exc))
        log.warning("all downloads of %s failed: %s", spec.name, "; ".join(errors))
        return None

    # trees first: they may make the archive unnecessary
    archives_needed: set[str] = set()
    for tree in sources.trees:
        hit = None
        for base in ([raw] + ([root] if root is not None else [])):
            hit = _find_in(base, tree.mirror_names + (tree.name,), is_dir=True)
            if hit is not None:
                if verify:
                    verify_tree(hit, tree)
                manifest["items"][tree.name] = {
                    "path": str(hit.resolve()), "source": "local" if base == raw else "mirror",
                    "tree_digest": tree.digest, "kind": "tree"}
                break
        if hit is None:
            archives_needed.add(tree.archive)

    for spec in sources.files:
        is_archive = any(t.archive == spec.name for t in sources.trees)
        if is_archive and spec.name not in archives_needed:
            continue
        needed = spec.name not in optional
        entry = locate_file(spec, needed=needed or not offline)
        if entry is None:
            if needed:
                missing.append(spec.name)
            else:
                manifest["missing_optional"].append(spec.name)
            continue
        manifest["items"][spec.name] = entry
        if is_archive:
            for tree in sources.trees:
                if tree.archive == spec.name and tree.name not in manifest["items"]:
                    manifest["items"][tree.name] = {
                        "path": entry["path"], "source": "archive", "member": tree.prefix.split("/", 1)[-1],
                        "tree_digest": tree.digest, "kind": "archive"}

    if missing:
        raise DataUnavailableError(_missing_message(sources, missing, raw, root, offline))
    return manifest


def _missing_message(sources: DatasetSources, missing: list[str], raw: Path, root: Path | None,
                     offline: bool) -> str:
    lines = [f"raw data for dataset {sources.name!r} is not available"
             + (" (offline: downloads are disabled)" if offline else " (download failed)") + "."]
    lines.append("Missing:")
    for name in missing:
        spec = sources.file(name)
        lines.append(f"  - {name} ({spec.checksum_text()})"
                     + (f"; official URL {spec.urls[0]}" if spec.urls else ""))
        trees = [t for t in sources.trees if t.archive == name]
        for t in trees:
            lines.append(f"      or the extracted folder {t.name}/ ({t.n_files} files)")
    lines.append(f"Fix: put the file(s) into {raw}/ , or point the environment variable {MIRROR_ENV} (or "
                 f"the config key data_mirror, which the variable overrides) at a folder that holds them"
                 + (f" (the current mirror {root} does not)" if root else "")
                 + (f", or allow downloads ({OFFLINE_ENV}=0, or offline: false with {OFFLINE_ENV} unset)."
                    if offline else "."))
    if sources.notes:
        lines.append(sources.notes)
    return "\n".join(lines)
