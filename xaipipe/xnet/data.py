"""Data for XNet: a classification task plus k auxiliary categories per example.

The paper (David & Liu, 002_8ecab4f1e6369166.txt, section 2.1) uses **CelebA**: task Young/Old, categories
5 O'Clock Shadow, Bald and Bangs (three of the 40 binary attributes; an image may have several or none).
CelebA is not available offline here, so two datasets that this pipeline already prepares stand in for
it; every table and metrics file says which one was used (``note``, ``comparable_with_paper``):

* ``mnist`` (``results/mnist/data/{train,test}.npz``): task ``parity`` (even/odd), ``ge5`` (0-4 vs 5-9)
  or ``digits``; categories are per-image *shape attributes* (:data:`MNIST_CATEGORIES`). Pixel attributes
  are measured on every image and thresholded at the ``attribute_quantile`` of the training split (like
  CelebA's attributes they are annotations of the image, correlated with the label but not determined by
  it): ``thick`` (stroke thickness: ink area / boundary pixels), ``slanted`` (|shear| of the ink from
  second moments, cov(col, row) / var(row)), ``wide`` (width of the ink's bounding box). Digit-shape
  attributes follow from the digit: ``loop`` (0, 6, 8, 9: a closed loop), ``straight`` (1, 4, 7: straight
  strokes only), ``curved`` (2, 3, 5: open curves).
* ``ng20`` (``results/ng20/data/{train,test}.parquet``, TF-IDF features of the ``tokens`` column, fitted
  on the training split): task ``fine`` (the 20 groups) or ``coarse`` (the top-level hierarchy: alt,
  comp, misc, rec, sci, soc, talk); categories are top-level groups (default comp, rec, sci, talk). With
  ``coarse`` the categories are classes of the task themselves (documented, allowed).
* ``celeba``: the paper's data. :data:`CELEBA` lists the official files (names as distributed on the
  CelebA Google Drive, md5 checksums as published by torchvision; **no sha256 is published**, so none is
  checked). They are resolved like every raw file of the pipeline (raw folder, mirror, download; see
  :mod:`xaipipe.data.sources`). Google Drive often refuses scripted downloads (quota, confirmation
  page); then put the three files into ``<raw_dir>/celeba/`` by hand. Splits: the official partition
  (0 train, 2 test; the validation partition 1 is not used, the paper trains for a fixed 8 epochs).
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch

from ..data.sources import DatasetSources, FileSpec, resolve
from ..errors import ChecksumError, DataUnavailableError, XaipipeError
from ..io import read_json

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


# --- splits ------------------------------------------------------------------------------------------
@dataclass
class XSplit:
    """Inputs, labels ``y`` (int64) and category membership ``a`` (bool, N x n_categories).

    ``x`` is a dense tensor (images), a scipy CSR matrix (TF-IDF rows, densified per batch) or a torch
    ``Dataset`` returning ``(index, tensor)`` (CelebA images, read by a DataLoader)."""

    x: Any
    y: np.ndarray
    a: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, rng: np.random.Generator | None, device: torch.device | str = "cpu",
                num_workers: int = 0, limit: int | None = None) -> Iterator[Batch]:
        """``(x, y, membership)`` batches; shuffled with ``rng``, in order without. ``limit``: only the
        first ``limit`` examples of that order (a seeded subsample when shuffled)."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        if limit is not None:
            order = order[: int(limit)]
        if isinstance(self.x, torch.utils.data.Dataset):
            loader = torch.utils.data.DataLoader(self.x, batch_size=batch_size, sampler=order.tolist(),
                                                 num_workers=num_workers)
            for idx, xb in loader:
                idx = idx.numpy()
                yield (xb.to(device), torch.from_numpy(self.y[idx]).to(device),
                       torch.from_numpy(self.a[idx]).to(device))
            return
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            if isinstance(self.x, torch.Tensor):
                xb = self.x[torch.as_tensor(idx)]
            else:  # scipy sparse rows
                xb = torch.from_numpy(np.asarray(self.x[idx].toarray(), dtype=np.float32))
            yield xb.to(device), torch.from_numpy(self.y[idx]).to(device), torch.from_numpy(self.a[idx]).to(device)

    def subset(self, n: int | None, seed: int) -> "XSplit":
        """A seeded random subset of ``n`` examples (kept in their original order); ``None``: all."""
        if n is None or n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=int(n), replace=False))
        if isinstance(self.x, torch.utils.data.Dataset):
            x: Any = _SubsetWithIndex(self.x, idx)
        elif isinstance(self.x, torch.Tensor):
            x = self.x[torch.as_tensor(idx)]
        else:
            x = self.x[idx]
        return XSplit(x, self.y[idx], self.a[idx])


class _SubsetWithIndex(torch.utils.data.Dataset):
    """Rows ``idx`` of a ``(index, tensor)`` dataset, re-numbered 0..len-1."""

    def __init__(self, ds, idx: np.ndarray):
        self.ds, self.idx = ds, np.asarray(idx)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int):
        _, x = self.ds[int(self.idx[i])]
        return i, x


@dataclass
class XData:
    """Everything one XNet training needs."""

    dataset: str
    train: XSplit
    test: XSplit
    classes: list[str]
    categories: list[str]
    in_shape: tuple[int, ...]
    note: str
    comparable_with_paper: bool
    meta: dict = field(default_factory=dict)  # goes into the checkpoint and metrics (thresholds, vocabulary)

    def category_rates(self) -> dict:
        return {split: {c: float(s.a[:, j].mean()) for j, c in enumerate(self.categories)}
                for split, s in (("train", self.train), ("test", self.test))}


# --- MNIST -------------------------------------------------------------------------------------------
def _pixel_thickness(x: np.ndarray) -> np.ndarray:
    """Ink area / number of ink pixels on the ink's boundary (≈ half the stroke width)."""
    out = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), 10000):
        ink = x[s:s + 10000] >= 0.5
        p = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
        interior = ink & p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & p[:, 1:-1, 2:]
        area = ink.sum((1, 2))
        boundary = (ink & ~interior).sum((1, 2))
        out[s:s + 10000] = area / np.maximum(boundary, 1)
    return out


def _pixel_slant(x: np.ndarray) -> np.ndarray:
    """|cov(col, row) / var(row)| of the intensity-weighted ink (a shear of 0 is an upright digit)."""
    h, w = x.shape[1:]
    rows = np.arange(h, dtype=np.float64)
    cols = np.arange(w, dtype=np.float64)
    m = x.astype(np.float64)
    mass = np.maximum(m.sum((1, 2)), 1e-9)
    row_marg = m.sum(2)                      # (N, H)
    r0 = row_marg @ rows / mass
    c0 = m.sum(1) @ cols / mass
    var_r = row_marg @ (rows ** 2) / mass - r0 ** 2
    cov = (m @ cols) @ rows / mass - r0 * c0  # E[row * col] - E[row] E[col]
    return np.abs(cov / np.maximum(var_r, 1e-9))


def _pixel_width(x: np.ndarray) -> np.ndarray:
    """Width in pixels of the bounding box of pixels >= 0.5."""
    cols = (x >= 0.5).any(1)
    has = cols.any(1)
    first = cols.argmax(1)
    last = cols.shape[1] - 1 - cols[:, ::-1].argmax(1)
    return np.where(has, last - first + 1, 0).astype(np.float64)


PIXEL_ATTRIBUTES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "thick": _pixel_thickness, "slanted": _pixel_slant, "wide": _pixel_width}
DIGIT_ATTRIBUTES: dict[str, tuple[int, ...]] = {"loop": (0, 6, 8, 9), "straight": (1, 4, 7), "curved": (2, 3, 5)}
MNIST_CATEGORIES = tuple(PIXEL_ATTRIBUTES) + tuple(DIGIT_ATTRIBUTES)

MNIST_TASKS: dict[str, tuple[list[str], Callable[[np.ndarray], np.ndarray]]] = {
    "parity": (["even", "odd"], lambda d: d % 2),
    "ge5": (["0-4", "5-9"], lambda d: (d >= 5).astype(np.int64)),
    "digits": ([str(i) for i in range(10)], lambda d: d),
}


def mnist_categories(x: np.ndarray, digits: np.ndarray, names: list[str],
                     thresholds: dict[str, float]) -> np.ndarray:
    """Membership matrix (N x len(names)) for images ``x`` in [0, 1]; pixel attributes use ``thresholds``."""
    cols = []
    for n in names:
        if n in PIXEL_ATTRIBUTES:
            cols.append(PIXEL_ATTRIBUTES[n](x) > thresholds[n])
        elif n in DIGIT_ATTRIBUTES:
            cols.append(np.isin(digits, DIGIT_ATTRIBUTES[n]))
        else:
            raise XaipipeError(f"xnet: unknown MNIST category {n!r}; known: {', '.join(MNIST_CATEGORIES)}")
    return np.stack(cols, 1)


def load_mnist(train_path: str, test_path: str, cfg: dict) -> XData:
    task = cfg.get("task", "parity")
    if task not in MNIST_TASKS:
        raise XaipipeError(f"xnet.mnist.data.task = {task!r} is unknown; use one of {sorted(MNIST_TASKS)}")
    names = list(cfg.get("categories", ["loop", "straight", "curved"]))
    q = float(cfg.get("attribute_quantile", 0.75))
    splits, thresholds = {}, {}
    for split, path in (("train", train_path), ("test", test_path)):
        with np.load(path) as z:
            x = z["x"].astype(np.float32) / 255.0
            d = z["y"].astype(np.int64)
        if split == "train":  # thresholds from the training split only
            thresholds = {n: float(np.quantile(PIXEL_ATTRIBUTES[n](x), q)) for n in names if n in PIXEL_ATTRIBUTES}
        a = mnist_categories(x, d, names, thresholds)
        splits[split] = XSplit(torch.from_numpy(x), MNIST_TASKS[task][1](d).astype(np.int64), a)
    defs = [f"{n} (top {1 - q:.0%} of the training split)" if n in PIXEL_ATTRIBUTES
            else f"{n} (digits {','.join(map(str, DIGIT_ATTRIBUTES[n]))})" for n in names]
    note = (f"Offline stand-in for CelebA: MNIST, task {task} ({' vs '.join(MNIST_TASKS[task][0])}), categories "
            f"{', '.join(defs)}. The published values are CelebA Young/Old with 5 O'Clock Shadow, Bald and Bangs "
            f"(ResNet-18) and are not directly comparable.")
    return XData("mnist", splits["train"], splits["test"], MNIST_TASKS[task][0], names, (28, 28), note, False,
                 {"task": task, "thresholds": thresholds, "attribute_quantile": q})


# --- 20 Newsgroups -----------------------------------------------------------------------------------
NG20_TOP = ("alt", "comp", "misc", "rec", "sci", "soc", "talk")


def _identity(tokens):
    return list(tokens)


def load_ng20(train_path: str, test_path: str, stats_path: str | None, cfg: dict) -> XData:
    from sklearn.feature_extraction.text import TfidfVectorizer

    task = cfg.get("task", "fine")
    names = list(cfg.get("categories", ["comp", "rec", "sci", "talk"]))
    bad = [n for n in names if n not in NG20_TOP]
    if bad:
        raise XaipipeError(f"xnet.ng20.data.categories: {bad} are not top-level 20NG groups; use some of {NG20_TOP}")
    tr, te = pd.read_parquet(train_path), pd.read_parquet(test_path)
    if task == "fine":
        classes = list(read_json(stats_path)["classes"]) if stats_path else sorted(tr["label_name"].unique())
    elif task == "coarse":
        classes = sorted({n.split(".")[0] for n in tr["label_name"]})
    else:
        raise XaipipeError(f"xnet.ng20.data.task = {task!r} is unknown; use fine or coarse")
    index = {c: i for i, c in enumerate(classes)}

    def to_y(df: pd.DataFrame) -> np.ndarray:
        names_ = df["label_name"] if task == "fine" else df["label_name"].str.split(".").str[0]
        return names_.map(index).to_numpy()
    vec = TfidfVectorizer(analyzer=_identity, max_features=int(cfg.get("max_features", 5000)),
                          min_df=int(cfg.get("min_df", 2)), sublinear_tf=True, dtype=np.float32)
    x_tr = vec.fit_transform(tr["tokens"])
    x_te = vec.transform(te["tokens"])
    splits = {}
    for split, df, x in (("train", tr, x_tr), ("test", te, x_te)):
        y = to_y(df)
        if np.isnan(y.astype(float)).any():
            raise XaipipeError(f"xnet: ng20 {split} split has groups outside the task's classes; re-run the data stage")
        top = df["label_name"].str.split(".").str[0].to_numpy()
        a = np.stack([top == n for n in names], 1)
        splits[split] = XSplit(x.tocsr(), y.astype(np.int64), a)
    vocab = vec.get_feature_names_out().tolist()
    note = (f"Offline stand-in for CelebA: 20 Newsgroups, task {task} ({len(classes)} classes), TF-IDF of "
            f"{len(vocab)} words, categories = top-level groups {', '.join(names)}. The published values are "
            f"CelebA Young/Old with 5 O'Clock Shadow, Bald and Bangs (ResNet-18) and are not directly comparable.")
    return XData("ng20", splits["train"], splits["test"], classes, names, (len(vocab),), note, False,
                 {"task": task, "tfidf_vocabulary": vocab, "tfidf_idf": vec.idf_.tolist()})


# --- CelebA ------------------------------------------------------------------------------------------
def _gdrive(file_id: str) -> tuple[str, ...]:
    # the endpoint that serves large files without the HTML confirmation page ("confirm=t")
    return (f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t",)


def _celeba_mirror(name: str) -> tuple[str, ...]:
    return (f"celeba/{name}", f"CelebA/{name}", f"celeba/Img/{name}", f"celeba/Anno/{name}", f"celeba/Eval/{name}")


CELEBA = DatasetSources(
    name="celeba",
    files=(
        # names and md5 as in torchvision.datasets.CelebA.file_list; no sha256 is published
        FileSpec(name="img_align_celeba.zip", md5="00d2c5bc6d35e252742224ab0c1e8fcb",
                 urls=_gdrive("0B7EVK8r0v71pZjFTYXZWM3FlRnM"), mirror_names=_celeba_mirror("img_align_celeba.zip")),
        FileSpec(name="list_attr_celeba.txt", md5="75e246fa4810816ffd6ee81facbd244c",
                 urls=_gdrive("0B7EVK8r0v71pblRyaVFSWGxPY0U"), mirror_names=_celeba_mirror("list_attr_celeba.txt")),
        FileSpec(name="list_eval_partition.txt", md5="d32c9cbf5e040fd4025c592c306e6668",
                 urls=_gdrive("0B7EVK8r0v71pY0NSMzRuSXJEVkk"), mirror_names=_celeba_mirror("list_eval_partition.txt")),
    ),
    notes=("CelebA (aligned and cropped, 202,599 JPEG images): official page "
           "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive folder 'Img' for the zip, 'Anno' "
           "and 'Eval' for the two text files). Checksums are md5 only (as published by torchvision); no sha256 "
           "is published. Google Drive often blocks scripted downloads (quota); download the files in a "
           "browser then."),
)
CELEBA_PAPER_TASK = "Young"
CELEBA_PAPER_CATEGORIES = ("5_o_Clock_Shadow", "Bald", "Bangs")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def fetch_celeba(raw_dir: str, mirror: str | None = None, offline: bool = False, verify: bool = True) -> dict:
    """Resolve the three CelebA files (raw folder -> mirror -> download) and return the manifest."""
    try:
        return resolve(CELEBA, raw_dir, mirror=mirror, offline=offline, verify=verify)
    except ChecksumError as exc:
        raise DataUnavailableError(
            f"{exc}\nIf this file was just downloaded from Google Drive, the server probably sent an HTML page "
            f"(quota exceeded or confirmation) instead of the file. {CELEBA.notes}") from exc


def read_celeba_attributes(path: str | Path) -> pd.DataFrame:
    """``list_attr_celeba.txt``: line 1 the image count, line 2 the 40 attribute names, then one line per
    image, ``<file> <±1> x 40``. Returns a bool DataFrame indexed by file name."""
    lines = Path(path).read_text().splitlines()
    try:
        n = int(lines[0].strip())
        names = lines[1].split()
        rows = [ln.split() for ln in lines[2:] if ln.strip()]
    except (IndexError, ValueError) as exc:
        raise XaipipeError(f"{path} is not a CelebA attribute file ({exc})") from exc
    if len(rows) != n or any(len(r) != len(names) + 1 for r in rows):
        raise XaipipeError(f"{path}: header promises {n} images with {len(names)} attributes, the file differs")
    vals = np.array([r[1:] for r in rows], dtype=np.int8)
    return pd.DataFrame(vals > 0, index=[r[0] for r in rows], columns=names)


def read_celeba_partition(path: str | Path) -> pd.Series:
    """``list_eval_partition.txt``: ``<file> <0|1|2>`` (train / validation / test)."""
    rows = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    return pd.Series([int(r[1]) for r in rows], index=[r[0] for r in rows], name="partition")


class CelebAImages(torch.utils.data.Dataset):
    """Aligned CelebA images from the official zip (or an extracted folder) as normalised tensors.

    Returns ``(index, image)``; ``image`` is ``(3, H, W)`` float, ImageNet-normalised, resized so that
    the shorter side is ``image_size`` (``None``: native 218 x 178). The zip is opened lazily once per
    DataLoader worker."""

    def __init__(self, source: str | Path, files: list[str], image_size: int | None = None):
        self.source, self.files, self.image_size = Path(source), list(files), image_size
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_zip"] = None
        return state

    def _read(self, name: str) -> bytes:
        if self.source.is_dir():
            return (self.source / name).read_bytes()
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.source)
            self._members = {Path(m).name: m for m in self._zip.namelist() if m.lower().endswith(".jpg")}
        try:
            return self._zip.read(self._members[name])
        except KeyError:
            raise XaipipeError(f"{self.source} has no image {name}; is it the official img_align_celeba.zip?") from None

    def __getitem__(self, i: int):
        import io

        from PIL import Image
        from torchvision.transforms import functional as TF

        img = Image.open(io.BytesIO(self._read(self.files[i]))).convert("RGB")
        if self.image_size:
            img = TF.resize(img, int(self.image_size))
        t = TF.pil_to_tensor(img).float().div_(255.0)
        return i, TF.normalize(t, IMAGENET_MEAN, IMAGENET_STD)


def load_celeba(manifest_path: str, cfg: dict) -> XData:
    manifest = read_json(manifest_path)
    items = manifest["items"]
    attrs = read_celeba_attributes(items["list_attr_celeba.txt"]["path"])
    part = read_celeba_partition(items["list_eval_partition.txt"]["path"])
    task = cfg.get("task", CELEBA_PAPER_TASK)
    names = list(cfg.get("categories", CELEBA_PAPER_CATEGORIES))
    missing = [n for n in [task] + names if n not in attrs.columns]
    if missing:
        raise XaipipeError(f"xnet.celeba.data: {missing} are not CelebA attributes; known: {', '.join(attrs.columns)}")
    source = cfg.get("image_dir") or items["img_align_celeba.zip"]["path"]
    size = cfg.get("image_size")
    splits = {}
    for split, code in (("train", 0), ("test", 2)):
        files = sorted(part.index[part == code])
        sub = attrs.loc[files]
        splits[split] = XSplit(CelebAImages(source, files, size), sub[task].to_numpy().astype(np.int64),
                               sub[names].to_numpy())
    paper = task == CELEBA_PAPER_TASK and tuple(names) == CELEBA_PAPER_CATEGORIES
    note = (f"CelebA, task {task} vs not {task}, categories {', '.join(names)}"
            + (": the paper's setting." if paper else "; the paper used Young with 5_o_Clock_Shadow, Bald, Bangs."))
    # aligned images are 178 wide, 218 high; Resize(size) scales the shorter side (the width) to size
    shape = (3, int(int(size) * 218 / 178), int(size)) if size else (3, 218, 178)
    return XData("celeba", splits["train"], splits["test"], [f"not {task}", task], names, shape, note,
                 paper, {"task": task, "image_size": size})


# --- entry point -------------------------------------------------------------------------------------
XNET_DATASETS = ("mnist", "ng20", "celeba")


def load_xnet_data(dataset: str, inputs: dict, cfg: dict, seed: int = 0) -> XData:
    """Build :class:`XData` for ``dataset`` from the prepared files in ``inputs`` (keys ``train``, ``test``
    and ``stats`` for mnist/ng20, ``manifest`` for celeba) and its ``xnet.<dataset>.data`` config;
    ``max_train`` / ``max_test`` take seeded subsets."""
    if dataset == "mnist":
        data = load_mnist(inputs["train"], inputs["test"], cfg)
    elif dataset == "ng20":
        data = load_ng20(inputs["train"], inputs["test"], inputs.get("stats"), cfg)
    elif dataset == "celeba":
        data = load_celeba(inputs["manifest"], cfg)
    else:
        raise XaipipeError(f"xnet: unknown dataset {dataset!r}; use one of {XNET_DATASETS}")
    data.train = data.train.subset(cfg.get("max_train"), seed)
    data.test = data.test.subset(cfg.get("max_test"), seed + 1)
    empty = [c for j, c in enumerate(data.categories) if not data.train.a[:, j].any()]
    if empty:
        raise XaipipeError(f"xnet: categories {empty} have no training example in {dataset}; choose other "
                           f"categories or a larger max_train")
    return data
