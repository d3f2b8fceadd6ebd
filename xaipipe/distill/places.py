"""Places2 distillation (report section 7.4): a Places365 ResNet-50 teacher, an AlexNet-style student.

**Teacher.** torchvision's ResNet-50 with 365 outputs and the CSAIL Places365 weights
(``resnet50_places365.pth.tar``, Zhou et al. 2017, report reference [9]): 24,255,917 parameters ("about 24
million"); the report quotes 54.7 % validation top-1, the figure of CSAIL's release, whose README scores
every image by the class scores averaged over 10 crops (``teacher.ten_crop``; default: one centre crop). The official file is a PyTorch ``DataParallel`` checkpoint,
``{"epoch", "arch", "state_dict", "best_prec1"}`` with every key prefixed ``module.``;
:func:`load_teacher` strips the prefix and takes the number of classes from the classifier weight.

**Student.** :class:`PlacesStudent`, "an AlexNet based smaller network with a skip connection ... about
3 million parameters" (the report's exact layers are only in its authors' code, so these are ours)::

    conv1  11x11/4, 3 -> 64      BN ReLU  maxpool 3/2      224 -> 55 -> 27
    conv2   5x5,   64 -> 128     BN ReLU  maxpool 3/2      27 -> 13
    conv3   3x3,  128 -> 192     BN ReLU                   13
    conv4   3x3,  192 -> 192     BN, + conv3's output (skip), ReLU
    conv5   3x3,  192 -> 128     BN ReLU  maxpool 3/2      13 -> 6
    adaptive average pool to 6x6 -> dropout -> fc 4608 -> 384, ReLU -> dropout -> fc 384 -> 365

2,913,965 parameters with the defaults (convolutions without bias, as they feed batch norm); a 1x1
projection joins the skip when conv3 and conv4 differ in width. The adaptive pool makes the parameter
count independent of the input size (at least 63 pixels), so a quick run may train at 112 pixels.

**Losses.** Variant ``ce``: cross-entropy; variant ``kd``: Hinton et al.'s mixture of section 7.3,
``L1 = alpha T^2 KL(p || q) + (1 - alpha) CE(s, y)`` (:func:`loss_terms`: the registered terms ``kd`` and ``ce``) with the
teacher's logits on the same augmented batch. Published (section 7.4): CE about 27 %, KD + CE about 29 %.
alpha and T for Places are not published; the defaults (0.5, 4) are our choice.

**Data.** Places365-Standard small images (256 x 256), never downloaded by the pipeline. Two layouts:
``folder``: the extracted ``places365standard_easyformat.tar`` (``places365_standard/{train,val}/<class>/
*.jpg``, the layout CSAIL's own training script reads with ImageFolder, so the sorted folder names are the
model's class order); ``lists``: the official devkit ``filelist_places365-standard.tar``
(``categories_places365.txt``, ``places365_train_standard.txt``, ``places365_val.txt``, checksummed) beside
the extracted ``train_256_places365standard.tar`` (``data_256/``) and ``val_256.tar`` (``val_256/``).
Preprocessing as CSAIL's: resize to 256, centre crop 224, ImageNet mean and standard deviation; students
train on random resized crops with horizontal flips.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..data.sources import DatasetSources, FileSpec, mirror_root, resolve, verify_file
from ..errors import ConfigError, DataUnavailableError, XaipipeError
from ..fitting import EpochData, EpochStats, Fitted, Settings, Step, fit
from ..io import atomic_path, file_digest, read_json, write_json
from ..models import count_parameters, load_checkpoint, save_checkpoint
from ..train import resolve_device, set_seed
from ..losses import LossInputs, Objective
from ..losses.kd import kd_loss

log = logging.getLogger(__name__)

# --- published values and official files -------------------------------------------------------------
PUBLISHED_TOP1 = {"teacher": 0.547, "ce": 0.27, "kd": 0.29}
"""Validation top-1 of report section 7.4 (the students' values are given as "about")."""

N_CLASSES = 365
N_TRAIN = 1_803_460
N_VAL = 36_500
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_WEIGHTS_BASE = ("https://places2.csail.mit.edu/models_places365/", "http://places2.csail.mit.edu/models_places365/")
TEACHER_SHA256 = {"resnet50": "46529c86902bd0cfb0ea562a30b2850c28d2620d96282b3db9c318e1d774f6c5"}
"""sha256 of the official CSAIL PyTorch weights (resnet50_places365.pth.tar)."""

# the devkit lists (md5 as torchvision.datasets.Places365 checks them; sha256 where published)
LIST_FILES = {
    "categories": FileSpec("categories_places365.txt", md5="06c963b85866bd0649f97cb43dd16673",
                           sha256="2affba635eb657e7ca95f4e6cc69bd9fac29ef4c32aeb83cafdfcd06ec6a1ea6"),
    "train": FileSpec("places365_train_standard.txt", md5="30f37515461640559006b8329efbed1a"),
    "val": FileSpec("places365_val.txt", md5="e9f2fd57bfd9d07630173f4e8708e4b1",
                    sha256="06d41c7ca5164a789a3dae2e997d8dd1ad2aef8d97ee474d4717a4dcce0a67be"),
}
LIST_IMAGE_DIRS = {"train": ("data_256", "data_256_standard"), "val": ("val_256",)}
EASYFORMAT = "places365standard_easyformat.tar"
DATA_URL = "http://data.csail.mit.edu/places/places365/"


def weights_sources(arch: str) -> DatasetSources:
    """Where the teacher weights come from: ``<raw_dir>/places365/<arch>_places365.pth.tar``, a mirror
    (``places365/`` or ``models_places365/`` sub-folder, or its top level) or the CSAIL download."""
    name = f"{arch}_places365.pth.tar"
    spec = FileSpec(name=name, sha256=TEACHER_SHA256.get(arch), urls=tuple(b + name for b in _WEIGHTS_BASE),
                    mirror_names=(f"places365/{name}", f"models_places365/{name}"))
    return DatasetSources(name="places365", files=(spec,), notes=(
        "The teacher weights are CSAIL's PyTorch Places365 model; set distill_places.teacher.weights to use "
        "a file elsewhere."))


# --- models -----------------------------------------------------------------------------------------
def _conv(c_in: int, c_out: int, k: int, stride: int, pad: int, bn: bool) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, pad, bias=not bn)] + ([nn.BatchNorm2d(c_out)] if bn else [])


class SkipBlock(nn.Module):
    """``relu(bn(conv(x)) + proj(x))``: conv4 of the student with the skip connection from conv3."""

    def __init__(self, c_in: int, c_out: int, bn: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv(c_in, c_out, 3, 1, 1, bn))
        self.proj = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.proj(x))


class PlacesStudent(nn.Module):
    """AlexNet-style student with one skip connection (layer table in the module docstring)."""

    def __init__(self, n_classes: int = N_CLASSES, channels: list[int] | tuple[int, ...] = (64, 128, 192, 192, 128),
                 hidden: int = 384, dropout: float = 0.5, batch_norm: bool = True, pool_size: int = 6) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ConfigError(f"student.channels needs 5 widths (conv1..conv5), got {list(channels)}")
        c1, c2, c3, c4, c5 = (int(c) for c in channels)
        bn = bool(batch_norm)
        relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
        pool = lambda: nn.MaxPool2d(3, 2)  # noqa: E731
        self.features = nn.Sequential(
            *_conv(3, c1, 11, 4, 2, bn), relu(), pool(),
            *_conv(c1, c2, 5, 1, 2, bn), relu(), pool(),
            *_conv(c2, c3, 3, 1, 1, bn), relu(),
            SkipBlock(c3, c4, bn),
            *_conv(c4, c5, 3, 1, 1, bn), relu(), pool(),
        )
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c5 * pool_size * pool_size, hidden), relu(),
            nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# xaipipe.models.LAZY_MODELS maps "places_student" to this class, so load_checkpoint reads model.pt


MIN_STUDENT_SIZE = 63
"""Smallest input the three 3/2 max-pools of the student accept."""


def student_kwargs(n_classes: int, cfg: dict) -> dict:
    return {"n_classes": int(n_classes), "channels": [int(c) for c in cfg.get("channels", (64, 128, 192, 192, 128))],
            "hidden": int(cfg.get("hidden", 384)), "dropout": float(cfg.get("dropout", 0.5)),
            "batch_norm": bool(cfg.get("batch_norm", True)), "pool_size": int(cfg.get("pool_size", 6))}


def _torchvision_model(arch: str, n_classes: int, meta: bool = False) -> nn.Module:
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(f"distill_places.teacher.arch = {arch!r} is not a torchvision classification model "
                          f"(the official Places365 teacher is resnet50)")
    if meta:
        with torch.device("meta"):
            return torchvision.models.get_model(arch, weights=None, num_classes=n_classes)
    return torchvision.models.get_model(arch, weights=None, num_classes=n_classes)


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` with the safe unpickler only (tensors and plain values: a checkpoint's other objects
    could run code on load, whatever its checksum); checkpoints written by Python 2 need ``latin1``."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except UnicodeDecodeError:
            return torch.load(path, map_location="cpu", weights_only=True, encoding="latin1")
    except pickle.UnpicklingError as exc:
        raise XaipipeError(f"teacher weights {path} cannot be read as tensors and plain values "
                           f"({str(exc).splitlines()[0]}); xaipipe never unpickles other objects, since a model "
                           f"file can run code on load. Replace it with the official {path.name}, or, for a "
                           f"file you trust, save its state dict alone (torch.save(ckpt['state_dict'], ...))") from exc
    except Exception as exc:
        raise XaipipeError(f"teacher weights {path} cannot be read ({exc}); the file is corrupt or not a "
                           f"PyTorch checkpoint: replace it with the official {path.name}") from exc


def teacher_state_dict(ckpt: Any) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint: the official ``{"state_dict": ...}`` wrapper or a bare state
    dict, with ``DataParallel``'s ``module.`` prefix removed."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise XaipipeError("the teacher checkpoint has no state dict (expected {'state_dict': {...}} as in the "
                           "CSAIL files, or a bare state dict)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_teacher(path: str | Path, arch: str = "resnet50", n_classes: int | None = None) -> nn.Module:
    """Build torchvision's ``arch`` and load the Places365 weights at ``path`` (eval mode, CPU).

    The number of classes is read from the checkpoint's classifier; ``n_classes`` (the data's) must match.
    """
    path = Path(path)
    if not path.is_file():
        raise DataUnavailableError(f"teacher weights {path} not found: put {path.name} there or fix "
                                   f"distill_places.teacher.weights")
    state = teacher_state_dict(_read_checkpoint(path))
    probe = _torchvision_model(arch, 1, meta=True)
    head = [name for name, m in probe.named_modules() if isinstance(m, nn.Linear)][-1]
    if f"{head}.weight" not in state:
        raise XaipipeError(f"{path} does not hold {arch} weights (no {head}.weight; keys start "
                           f"{sorted(state)[:3]}): set distill_places.teacher.arch to the file's architecture")
    k = int(state[f"{head}.weight"].shape[0])
    if n_classes is not None and k != n_classes:
        raise XaipipeError(f"the teacher {path} predicts {k} classes but the data have {n_classes}: use the "
                           f"Places365 weights with the Places365-Standard images (365 classes)")
    model = _torchvision_model(arch, k, meta=True)  # no random initialisation: the file supplies every weight
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as exc:
        raise XaipipeError(f"{path} does not fit torchvision's {arch}: {str(exc).splitlines()[0]} ... set "
                           f"distill_places.teacher.arch to the file's architecture") from exc
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):  # buffers outside the state dict
        model = _torchvision_model(arch, k)
        model.load_state_dict(state)
    return model.eval()


def load_student(path: str | Path) -> tuple[nn.Module, dict]:
    """A trained student (``students/<variant>/model.pt``) and its meta data."""
    return load_checkpoint(path)


# --- data: locate, index, load ------------------------------------------------------------------------
def _candidates(base: Path) -> list[Path]:
    return [base, base / "places365_standard", base / "places365standard_easyformat" / "places365_standard"]


def _folder_classes(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def _folder_split(split_dir: Path, classes: list[str]) -> pd.DataFrame:
    rows = []
    for label, cls in enumerate(tqdm(classes, desc=f"index {split_dir.name}", leave=False, mininterval=2.0)):
        d = split_dir / cls
        if not d.is_dir():
            raise DataUnavailableError(f"class folder {d} is missing (the train/ and val/ folders must hold the "
                                       f"same class folders)")
        names = sorted(e.name for e in os.scandir(d) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        rows += [(f"{split_dir.name}/{cls}/{n}", label) for n in names]
    return pd.DataFrame(rows, columns=["path", "label"])


def easyformat_name(category: str) -> str:
    """``/a/apartment_building/outdoor`` (categories_places365.txt) -> ``apartment_building-outdoor``."""
    return category.strip("/").split("/", 1)[1].replace("/", "-")


def _read_categories(path: Path) -> list[str]:
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip():
            name, idx = line.split()
            pairs.append((int(idx), easyformat_name(name)))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise XaipipeError(f"{path}: class indices are not 0..{len(pairs) - 1}")
    return [n for _, n in pairs]


def _index_folder(root: Path) -> dict:
    classes = _folder_classes(root / "train")
    if not classes:
        raise DataUnavailableError(f"{root / 'train'} has no class folders")
    cat = root / LIST_FILES["categories"].name
    if cat.is_file() and _read_categories(cat) != classes:
        raise XaipipeError(f"the class folders of {root / 'train'} do not match {cat} in order and names; "
                           f"the teacher's outputs follow categories_places365.txt")
    extra = sorted(set(_folder_classes(root / "val")) - set(classes))
    if extra:
        raise XaipipeError(f"{root / 'val'} has class folders that {root / 'train'} lacks: {extra[:5]}")
    return {"layout": "folder", "root": str(root.resolve()), "classes": classes,
            "train": _folder_split(root / "train", classes), "val": _folder_split(root / "val", classes)}


def _index_lists(root: Path, verify: bool) -> dict:
    absent = [spec.name for spec in LIST_FILES.values() if not (root / spec.name).is_file()]
    if absent:
        raise DataUnavailableError(f"{root} lacks the devkit list(s) {', '.join(absent)}: extract "
                                   f"filelist_places365-standard.tar ({DATA_URL}) there")
    digests = {spec.name: verify_file(root / spec.name, spec) if verify else file_digest(root / spec.name)
               for spec in LIST_FILES.values()}
    classes = _read_categories(root / LIST_FILES["categories"].name)
    out = {"layout": "lists", "root": str(root.resolve()), "classes": classes, "list_files": digests}
    for split in ("train", "val"):
        img_dir = next((d for d in LIST_IMAGE_DIRS[split] if (root / d).is_dir()), None)
        if img_dir is None:
            raise DataUnavailableError(
                f"{root} has the Places365 lists but no {split} image folder "
                f"({' or '.join(d + '/' for d in LIST_IMAGE_DIRS[split])}): extract "
                f"{'train_256_places365standard.tar' if split == 'train' else 'val_256.tar'} there")
        table = pd.read_csv(root / LIST_FILES[split].name, sep=" ", header=None, names=["path", "label"],
                            dtype={"path": str, "label": np.int64})
        table["path"] = img_dir + "/" + table["path"].str.lstrip("/")
        out[split] = table
    return out


def _missing_data_message(tried: list[Path]) -> str:
    return "\n".join([
        "Places365-Standard images (256x256) not found. Looked for them in:",
        *[f"  - {p}/ (and its sub-folder places365_standard/)" for p in tried],
        "Put ONE of these into the first folder above (or set distill_places.data_dir to the folder that holds it):",
        f"  (a) the extracted {EASYFORMAT} ({DATA_URL}{EASYFORMAT}): places365_standard/train/<class>/*.jpg and "
        "places365_standard/val/<class>/*.jpg;",
        "  (b) the devkit lists categories_places365.txt, places365_train_standard.txt, places365_val.txt (from "
        f"{DATA_URL}filelist_places365-standard.tar) beside the folders data_256/ (train_256_places365standard.tar) "
        "and val_256/ (val_256.tar).",
        "The pipeline never downloads the images (tens of GB).",
    ])


def locate_data(data_dir: str | None, raw_dir: str | os.PathLike, mirror: str | None = None) -> tuple[Path, str]:
    """The folder holding the images and its layout (``folder`` or ``lists``). Searched: ``data_dir`` if
    set, else ``<raw_dir>/places365`` and ``<mirror>/places365`` (each also with the sub-folders the
    easyformat archive unpacks to) and ``<mirror>/places365_standard``."""
    if data_dir:
        bases = [Path(data_dir).expanduser()]
        candidates = _candidates(bases[0])
    else:
        bases = [Path(raw_dir) / "places365"]
        root = mirror_root(mirror)
        if root is not None:
            bases.append(root / "places365")
        candidates = [c for base in bases for c in _candidates(base)]
        if root is not None:
            candidates.append(root / "places365_standard")
    for c in candidates:
        if (c / "train").is_dir() and (c / "val").is_dir():
            return c, "folder"
        if (c / LIST_FILES["categories"].name).is_file() and (c / LIST_FILES["val"].name).is_file():
            return c, "lists"
    raise DataUnavailableError(_missing_data_message(bases))


def _subset(table: pd.DataFrame, per_class: int | None, rng: np.random.Generator) -> pd.DataFrame:
    if per_class is None:
        return table.reset_index(drop=True)
    keep = []
    for _, idx in table.groupby("label", sort=True).indices.items():
        keep.append(np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False)))
    return table.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def build_index(data_dir: str | None, raw_dir: str | os.PathLike, mirror: str | None = None, verify: bool = True,
                max_train_per_class: int | None = None, max_val_per_class: int | None = None,
                seed: int = 0) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Find the images, list every (relative path, label) of both splits, subset per class (seeded).

    Returns a manifest (layout, root, classes, counts, completeness) and the train and val tables."""
    root, layout = locate_data(data_dir, raw_dir, mirror)
    found = _index_folder(root) if layout == "folder" else _index_lists(root, verify)
    rng = np.random.default_rng(seed)
    train = _subset(found.pop("train"), max_train_per_class, rng)
    val = _subset(found.pop("val"), max_val_per_class, rng)
    for name, table in (("train", train), ("val", val)):
        if table.empty:
            raise DataUnavailableError(f"no {name} images found under {root}")
        sample = table["path"].to_numpy()[rng.permutation(len(table))[:2000]]  # lists may name absent files
        missing = [p for p in sample if not (root / p).is_file()]
        if missing:
            raise DataUnavailableError(f"{len(missing)} of {len(sample)} sampled {name} images are missing under "
                                       f"{root}, e.g. {root / missing[0]}; extract the image archives completely")
    n_cls = len(found["classes"])
    complete = {"train": len(train) == N_TRAIN and n_cls == N_CLASSES, "val": len(val) == N_VAL and n_cls == N_CLASSES}
    manifest = {**found, "n_classes": n_cls, "n_train": len(train), "n_val": len(val), "complete": complete,
                "subset": {"max_train_per_class": max_train_per_class, "max_val_per_class": max_val_per_class,
                           "seed": seed}}
    log.info("Places365 %s layout at %s: %d classes, %d train and %d val images", layout, root, n_cls,
             len(train), len(val))
    return manifest, train, val


def resolve_teacher(arch: str, weights: str | None, sha256: str | None, raw_dir: str | os.PathLike,
                    mirror: str | None = None, offline: bool = False, verify: bool = True) -> dict:
    """Locate (or download) the teacher weights: ``{"path", "source", "sha256", "official"}``."""
    official = TEACHER_SHA256.get(arch)
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataUnavailableError(f"teacher weights {path} (distill_places.teacher.weights) not found: put "
                                       f"the file there (official: {_WEIGHTS_BASE[0]}{arch}_places365.pth.tar) "
                                       f"or set teacher.weights to null to use {Path(raw_dir) / 'places365'}/")
        digest = verify_file(path, FileSpec(path.name, sha256=sha256)) if sha256 else file_digest(path)
        entry = {"path": str(path.resolve()), "source": "config", "sha256": digest}
    else:
        manifest = resolve(weights_sources(arch), raw_dir, mirror=mirror, offline=offline, verify=verify)
        entry = dict(manifest["items"][f"{arch}_places365.pth.tar"])
    entry["official"] = official is not None and entry["sha256"] == official
    entry["arch"] = arch
    return entry


class ImageList(torch.utils.data.Dataset):
    """Images ``root/<path>`` with integer labels; paths are kept as one bytes array (no per-item Python
    objects, so forked loader workers do not copy them)."""

    def __init__(self, root: str | Path, table: pd.DataFrame, transform) -> None:
        self.root = str(root)
        self.paths = table["path"].to_numpy().astype("S")
        self.labels = table["label"].to_numpy().astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(os.path.join(self.root, self.paths[i].decode())) as im:
            img = im.convert("RGB")
        return self.transform(img), int(self.labels[i])


def eval_transform(crop: int, resize: int | None = None, ten_crop: bool = False):
    """Resize (shorter side) then centre crop (CSAIL: 256 -> 224), or 10 crops stacked ``(10, 3, H, W)``."""
    from torchvision import transforms as T

    resize = resize or round(crop / 0.875)
    norm = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    if ten_crop:
        return T.Compose([T.Resize(resize), T.TenCrop(crop), _StackCrops(norm)])
    return T.Compose([T.Resize(resize), T.CenterCrop(crop), norm])


class _StackCrops:
    """The 10 crops of ``TenCrop`` as one ``(10, 3, H, W)`` tensor (a class, so loader workers can pickle it)."""

    def __init__(self, norm) -> None:
        self.norm = norm

    def __call__(self, crops) -> torch.Tensor:
        return torch.stack([self.norm(c) for c in crops])


def train_transform(size: int, scale_min: float = 0.08, flip: bool = True):
    from torchvision import transforms as T

    aug = [T.RandomResizedCrop(size, scale=(scale_min, 1.0))] + ([T.RandomHorizontalFlip()] if flip else [])
    return T.Compose(aug + [T.ToTensor(), T.Normalize(MEAN, STD)])


def make_loader(dataset, batch_size: int, workers: int, device: torch.device, shuffle: bool = False,
                seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                       pin_memory=device.type == "cuda", generator=g,
                                       persistent_workers=workers > 0)


# --- evaluation and training --------------------------------------------------------------------------
def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


@torch.inference_mode()
def evaluate(model: nn.Module, loader, device: torch.device, amp: bool = False, desc: str = "eval") -> dict:
    """Top-1 / top-5 accuracy, mean cross-entropy and per-class top-1. Batches of 10 crops per image
    (``(B, 10, 3, H, W)``) are scored by the class probabilities averaged over the crops."""
    model.eval()
    n = c1 = c5 = 0
    loss_sum = 0.0
    hits, counts = None, None
    for x, y in tqdm(loader, desc=desc, leave=False, mininterval=2.0):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x.flatten(0, 1) if x.dim() == 5 else x).float()
        if x.dim() == 5:
            log_p = torch.log(F.softmax(logits, 1).view(x.shape[0], x.shape[1], -1).mean(1).clamp_min(1e-12))
        else:
            log_p = F.log_softmax(logits, 1)
        loss_sum += float(F.nll_loss(log_p, y, reduction="sum"))
        top = log_p.topk(min(5, log_p.shape[1]), 1).indices
        ok1 = top[:, 0] == y
        c1 += int(ok1.sum())
        c5 += int((top == y[:, None]).any(1).sum())
        n += len(y)
        k = log_p.shape[1]
        if hits is None:
            hits, counts = torch.zeros(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)
        hits += torch.bincount(y[ok1].cpu(), minlength=k)
        counts += torch.bincount(y.cpu(), minlength=k)
    per_class = [(float(h) / float(c) if c else None) for h, c in zip(hits.tolist(), counts.tolist())]
    return {"top1": c1 / n, "top5": c5 / n, "loss": loss_sum / n, "n": n, "per_class_top1": per_class}


def loss_terms(alpha: float, temperature: float) -> Objective:
    """The student's objective from the registered loss terms: cross-entropy when ``alpha == 0`` (no teacher
    needed), else Hinton's ``alpha KD + (1 - alpha) CE``."""
    if alpha == 0:
        return Objective({"ce": 1.0})
    return Objective([("kd", float(alpha), {"temperature": float(temperature)}), ("ce", 1.0 - float(alpha))])


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                 alpha: float, temperature: float) -> torch.Tensor:
    """:func:`loss_terms` of one batch."""
    return loss_terms(alpha, temperature)(LossInputs(logits=student_logits, labels=labels,
                                                     teacher_logits=teacher_logits))[0]


def fit_student(student: nn.Module, teacher: nn.Module | None, train_loader, val_loader, alpha: float,
                temperature: float, cfg: dict, device: torch.device, teacher_size: int | None = None,
                desc: str = "student") -> Fitted:
    """Train ``student`` in place for ``cfg["epochs"]`` epochs through the pipeline's training kernel
    (:func:`xaipipe.fitting.fit`); validate after each and keep the last. The teacher (frozen, eval mode)
    scores the same augmented batch, resized to ``teacher_size`` when given."""
    if alpha > 0 and teacher is None:
        raise XaipipeError("a KD variant (alpha > 0) needs the teacher")
    if teacher is not None:
        teacher.eval()
    amp = bool(cfg.get("amp", False))
    settings = Settings(epochs=int(cfg.get("epochs", 1)), lr=float(cfg.get("lr", 0.05)),
                        optimizer=cfg.get("optimizer", "sgd"), weight_decay=float(cfg.get("weight_decay", 5e-4)),
                        momentum=float(cfg.get("momentum", 0.9)), nesterov=True, optimizers=("sgd", "adamw"),
                        schedule=cfg.get("schedule", "cosine"), warmup_epochs=float(cfg.get("warmup_epochs", 0.0)),
                        where="distill_places.train")
    terms = loss_terms(alpha, temperature)

    def objective(student: nn.Module, batch, epoch: int) -> Step:
        x, y = batch
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        t_logits = None
        if alpha > 0:
            with torch.no_grad(), _autocast(device, amp):
                xt = x if not teacher_size or teacher_size == x.shape[-1] else F.interpolate(
                    x, size=(teacher_size, teacher_size), mode="bilinear", align_corners=False)
                t_logits = teacher(xt).float()
        with _autocast(device, amp):
            s_logits = student(x).float()
        loss, _ = terms(LossInputs(logits=s_logits, labels=y, teacher_logits=t_logits))
        with torch.no_grad():  # float32 sums on the device, read once per epoch
            kd = kd_loss(s_logits, t_logits, temperature) if t_logits is not None else loss.new_zeros(())
            sums = torch.stack([loss, F.cross_entropy(s_logits, y), kd,
                                (s_logits.argmax(1) == y).sum() / len(y)]) * len(y)
        return Step(loss, len(y), dict(zip(("loss", "ce", "kd", "top1"), sums)))

    def report(stats: EpochStats) -> dict:
        val = evaluate(student, val_loader, device, amp, desc=f"{desc} val")
        m = stats.means
        return {"epoch": stats.epoch, "train_loss": m["loss"], "train_ce": m["ce"],
                "train_kd": m["kd"] if alpha > 0 else float("nan"), "train_top1": m["top1"],
                "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"], "lr": stats.lr}

    # the loader shuffles with its own seeded generator, not the kernel's
    data = EpochData(lambda rng: train_loader, len(train_loader))
    return fit(student, objective, data, settings, report=report, desc=desc,
               diverged=f"lower distill_places.train.lr (now {settings.lr:g}) and check the images; no model was "
                        f"written")


# --- stages (one per Snakemake rule) ------------------------------------------------------------------
def index_stage(cfg: dict, raw_dir: str, mirror: str | None, offline: bool, verify: bool, seed: int,
                outputs: dict) -> dict:
    """Locate images and teacher weights; write ``manifest.json`` and ``{train,val}.parquet``. Every
    missing piece is named in one error."""
    errors, manifest, tables = [], None, None
    try:
        manifest, *tables = build_index(cfg.get("data_dir"), raw_dir, mirror, verify,
                                        cfg.get("max_train_per_class"), cfg.get("max_val_per_class"), seed)
    except DataUnavailableError as exc:
        errors.append(str(exc))
    t = cfg.get("teacher", {})
    try:
        teacher = resolve_teacher(t.get("arch", "resnet50"), t.get("weights"), t.get("sha256"), raw_dir, mirror,
                                  offline, verify)
    except DataUnavailableError as exc:
        errors.append(str(exc))
    if errors:
        raise DataUnavailableError("\n\n".join(errors))
    manifest["teacher"] = teacher
    manifest["verified"] = verify
    for split, table in zip(("train", "val"), tables):
        with atomic_path(outputs[split]) as tmp:
            table.to_parquet(tmp, index=False)
    write_json(outputs["manifest"], manifest)
    return manifest


def teacher_stage(manifest_path: str, val_path: str, cfg: dict, device: str, workers: int, out_json: str,
                  out_timing: str) -> dict:
    """Validation top-1 / top-5 of the teacher (CSAIL protocol: 256 -> centre 224, or 10 crops) to
    ``out_json``; its wall time to ``out_timing`` (``eval_seconds``, ``device``), so that ``out_json`` is
    byte-identical between runs."""
    m = read_json(manifest_path)
    t = cfg.get("teacher", {})
    dev = resolve_device(device)
    teacher = load_teacher(m["teacher"]["path"], t.get("arch", "resnet50"), m["n_classes"]).to(dev)
    ten = bool(t.get("ten_crop", False))
    ds = ImageList(m["root"], pd.read_parquet(val_path), eval_transform(int(t.get("crop", 224)),
                                                                         int(t.get("resize", 256)), ten))
    bs = max(1, int(t.get("batch_size", 64)) // (10 if ten else 1))
    t0 = time.perf_counter()
    amp = bool(cfg.get("train", {}).get("amp", False))
    res = evaluate(teacher, make_loader(ds, bs, workers, dev), dev, amp, desc="teacher val")
    out = {**{k: res[k] for k in ("top1", "top5", "loss", "n")}, "per_class_top1": res["per_class_top1"],
           "published_top1": PUBLISHED_TOP1["teacher"], "difference": res["top1"] - PUBLISHED_TOP1["teacher"],
           "arch": t.get("arch", "resnet50"), "n_parameters": count_parameters(teacher),
           "protocol": {"resize": int(t.get("resize", 256)), "crop": int(t.get("crop", 224)), "ten_crop": ten},
           "weights": m["teacher"], "device": str(dev),
           "comparable_with_paper": bool(m["complete"]["val"] and m["teacher"]["official"])}
    write_json(out_json, out)
    write_json(out_timing, {"eval_seconds": round(time.perf_counter() - t0, 1), "device": str(dev)})
    log.info("teacher: val top-1 %.4f top-5 %.4f on %d images (published %.3f)", out["top1"], out["top5"],
             out["n"], PUBLISHED_TOP1["teacher"])
    return out


def student_stage(manifest_path: str, train_path: str, val_path: str, cfg: dict, variant: str, seed: int,
                  device: str, workers: int, outputs: dict) -> dict:
    """Train one student variant (``cfg["variants"][variant]``: ``alpha``, ``temperature``): ``outputs``
    ``model``, ``history``, ``metrics`` and ``timing`` (the wall times: ``train_seconds``, ``epoch_seconds``,
    ``device``; apart, so that the others are byte-identical between runs)."""
    set_seed(seed, device=device)
    dev = resolve_device(device)
    m = read_json(manifest_path)
    v = cfg.get("variants", {}).get(variant)
    if v is None:
        raise ConfigError(f"no variant {variant!r} under distill_places.variants")
    alpha, temp = float(v.get("alpha", 0.0)), float(v.get("temperature", 1.0))
    s_cfg, tr, t = cfg.get("student", {}), cfg.get("train", {}), cfg.get("teacher", {})
    size = int(s_cfg.get("image_size", 224))
    if size < MIN_STUDENT_SIZE:
        raise ConfigError(f"distill_places.student.image_size = {size} is too small for the student's three "
                          f"max-pools; use at least {MIN_STUDENT_SIZE} (the report's setting is 224)")
    kwargs = student_kwargs(m["n_classes"], s_cfg)
    student = PlacesStudent(**kwargs).to(dev)
    teacher = None
    if alpha > 0:
        teacher = load_teacher(m["teacher"]["path"], t.get("arch", "resnet50"), m["n_classes"]).to(dev)
        for p in teacher.parameters():
            p.requires_grad_(False)
    train_ds = ImageList(m["root"], pd.read_parquet(train_path),
                         train_transform(size, float(tr.get("crop_scale_min", 0.08)), bool(tr.get("flip", True))))
    val_ds = ImageList(m["root"], pd.read_parquet(val_path), eval_transform(size))
    bs = int(tr.get("batch_size", 128))
    train_loader = make_loader(train_ds, bs, workers, dev, shuffle=True, seed=seed)
    val_loader = make_loader(val_ds, int(tr.get("eval_batch_size", 2 * bs)), workers, dev)
    t0 = time.perf_counter()
    fitted = fit_student(student, teacher, train_loader, val_loader, alpha, temp, tr, dev,
                         t.get("input_size"), desc=f"places365/{variant}")
    seconds = time.perf_counter() - t0
    history = fitted.history
    last = history[-1]
    best = max(history, key=lambda r: r["val_top1"])
    pub = PUBLISHED_TOP1.get(variant)
    metrics = {"variant": variant, "alpha": alpha, "temperature": temp if alpha > 0 else None,
               "top1": last["val_top1"], "top5": last["val_top5"], "val_loss": last["val_loss"], "n_val": len(val_ds),
               "n_train": len(train_ds), "published_top1": pub,
               "difference": None if pub is None else last["val_top1"] - pub,
               "best_epoch": best["epoch"], "best_val_top1": best["val_top1"], "epochs": len(history),
               "n_parameters": count_parameters(student), "image_size": size, "arch": "places_student",
               "device": str(dev), "seed": seed,
               "comparable_with_paper": bool(m["complete"]["train"] and m["complete"]["val"]
                                             and (alpha == 0 or m["teacher"]["official"]))}
    save_checkpoint(outputs["model"], "places_student", kwargs, student,
                    {"classes": m["classes"], "variant": variant, "alpha": alpha, "temperature": temp,
                     "image_size": size, "mean": MEAN, "std": STD, "dataset": "places365"})
    with atomic_path(outputs["history"]) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False, float_format="%.6g")
    write_json(outputs["metrics"], metrics)
    write_json(outputs["timing"], {"train_seconds": round(seconds, 1), "epoch_seconds": fitted.epoch_seconds,
                                   "device": str(dev)})
    log.info("places365/%s: val top-1 %.4f (published %s) after %d epochs in %.0fs", variant, metrics["top1"],
             pub, len(history), seconds)
    return metrics


def table_stage(teacher_json: str, student_metrics: dict[str, str], out_csv: str, out_md: str) -> pd.DataFrame:
    """Teacher and students next to the published values: ``table.csv`` and ``table.md``."""
    t = read_json(teacher_json)
    rows = [{"model": "teacher", "arch": t["arch"], "loss": "-", "top1": t["top1"], "top5": t["top5"],
             "published_top1": t["published_top1"], "difference": t["difference"], "n_val": t["n"],
             "parameters": t["n_parameters"], "comparable_with_paper": t["comparable_with_paper"]}]
    for variant, path in student_metrics.items():
        s = read_json(path)
        rows.append({"model": f"student_{variant}", "arch": s["arch"],
                     "loss": "CE" if s["alpha"] == 0 else f"{s['alpha']:g} KD (T={s['temperature']:g}) + "
                                                          f"{1 - s['alpha']:g} CE",
                     "top1": s["top1"], "top5": s["top5"], "published_top1": s["published_top1"],
                     "difference": s["difference"], "n_val": s["n_val"], "parameters": s["n_parameters"],
                     "comparable_with_paper": s["comparable_with_paper"]})
    df = pd.DataFrame(rows)
    for c in ("top1", "top5", "difference"):
        df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 4))
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out_md) as tmp:
        tmp.write_text(df.to_markdown(index=False) + "\n")
    return df
