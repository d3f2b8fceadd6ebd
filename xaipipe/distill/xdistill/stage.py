"""The XDistillation stage, one function per Snakemake rule (``rules/xdistill.smk``); every function reads
one dataset's section of the ``xdistill`` config (``dcfg``) and writes its outputs atomically.

Order (Figure 2 of the paper): ``teacher`` -> SHAP of the teacher on training images, summed per SLIC
superpixel (``cae_targets``) -> convolutional autoencoder trained with L1 to map an image to that map
(``cae``) -> one student per configured method (``student``; XDistillation fuses the frozen CAE) ->
explanations of teacher and students on the same test images and superpixels (``teacher_eval``,
``student_explain``) -> Tables II-V and figures (``tables``, ``figures``).

Wall times go to ``timing.json`` files (of the teacher, the CAE, every student and the evaluation
explanations), never into metrics, histories or explanations, which are byte-identical between runs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ...data.split import lenient_val_split, sklearn_stratified_subset
from ...errors import XaipipeError
from ...io import atomic_path, read_json, write_json
from ...train import resolve_device, set_seed
from . import models as M
from .explain_metrics import consistency
from .explainers import DEFAULTS as EXPLAINER_DEFAULTS, explain_all, shap_values
from .figures import explanation_grid
from .methods import get_method
from .superpixels import batch_segments, batch_superpixel_maps
from .tables import write_tables
from .train import cae_errors, cae_outputs, fit, fit_cae, load_images, load_labels, predict, teacher_loss, write_history

log = logging.getLogger(__name__)
ALL_EXPLAINERS = {name: {} for name in EXPLAINER_DEFAULTS}  # the schema's default: every explainer


# --- shared helpers ---------------------------------------------------------------------------------------
def _split(path: str, max_n: int | None, seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    idx = sklearn_stratified_subset(load_labels(path), max_n, seed)
    x, y = load_images(path, idx)
    return x, y, idx


def _n_classes(*ys: np.ndarray) -> int:
    return int(max(int(y.max()) for y in ys if len(y))) + 1


def _hwc(x: torch.Tensor) -> np.ndarray:
    return np.moveaxis(x.numpy(), 1, -1)


def segments_of(x: torch.Tensor, sp: dict) -> np.ndarray:
    """SLIC segments ``(N, H, W)`` of images ``(N, C, H, W)`` with the ``superpixels`` settings."""
    return batch_segments(_hwc(x), n_segments=int(sp.get("n_segments", 19)),
                          compactness=float(sp.get("compactness", 0.1)), sigma=float(sp.get("sigma", 0.0)))


def background_indices(y_train: np.ndarray, dcfg: dict, seed: int) -> np.ndarray:
    """Indices (into the training file) of the SHAP background images: a seeded sample of the training
    subset, shared by every explanation of the stage."""
    tr = sklearn_stratified_subset(y_train, dcfg.get("data", {}).get("max_train"), seed)
    n = min(int(dcfg.get("shap", {}).get("background", 100)), len(tr))
    return np.sort(np.random.default_rng(seed + 1).choice(tr, size=n, replace=False))


def _save_npz(path: str | Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def _load_npz(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _classifier_spec(arch: str, arch_kwargs: dict, in_channels: int, n_classes: int, image_size: int) -> dict:
    return {"kind": "classifier", "arch": arch,
            "kwargs": {"in_channels": in_channels, "n_classes": n_classes, "image_size": image_size, **arch_kwargs}}


# --- teacher ----------------------------------------------------------------------------------------------
def run_teacher(train_path: str, test_path: str, dcfg: dict, seed: int, device: str, outputs: dict,
                desc: str = "teacher") -> dict:
    set_seed(seed, device=device)
    dev = resolve_device(device)
    data = dcfg.get("data", {})
    x_tr, y_tr, _ = _split(train_path, data.get("max_train"), seed)
    x_te, y_te, _ = _split(test_path, data.get("max_test"), seed)
    tcfg = dcfg["teacher"]
    spec = _classifier_spec(tcfg["arch"], dict(tcfg.get("arch_kwargs", {})), x_tr.shape[1], _n_classes(y_tr, y_te),
                            x_tr.shape[2])
    model = M.build_from_spec(spec).to(dev)
    tr, va = lenient_val_split(y_tr, float(tcfg.get("val_fraction", 0.1)), seed)
    t0 = time.perf_counter()
    fitted = fit(model, teacher_loss(tcfg.get("loss", "ce")), x_tr[torch.as_tensor(tr)], y_tr[tr],
                 (x_tr[torch.as_tensor(va)], y_tr[va]), tcfg, dev, seed, desc)
    seconds = time.perf_counter() - t0
    pred = predict(model, x_te, dev)
    metrics = {"accuracy": float((pred == y_te).mean()), "n_errors": int((pred != y_te).sum()),
               "n_test": int(len(y_te)), "n_train": int(len(tr)), "n_val": int(len(va)),
               "n_parameters": M.count_parameters(model, trainable_only=False), "arch": tcfg["arch"], "loss": tcfg.get("loss", "ce"),
               "epochs_run": len(fitted.history), "best_epoch": fitted.best_epoch, "device": str(dev), "seed": seed}
    M.save_model(outputs["model"], spec, model, {"role": "teacher"})
    write_history(fitted.history, outputs["history"])
    write_json(outputs["metrics"], metrics)
    write_json(outputs["timing"], {"train_seconds": round(seconds, 1), "epoch_seconds": fitted.epoch_seconds,
                                   "device": str(dev)})
    log.info("%s: test accuracy %.4f, %d parameters, %.0fs", desc, metrics["accuracy"], metrics["n_parameters"],
             seconds)
    return metrics


# --- explanations of the teacher ---------------------------------------------------------------------------
def run_cae_targets(teacher_path: str, train_path: str, dcfg: dict, seed: int, device: str, out_npz: str) -> dict:
    """SHAP of the teacher on ``shap.n_train`` training images, summed per superpixel (section III-A1)."""
    set_seed(seed, device=device)
    dev = resolve_device(device)
    teacher, _ = M.load_model(teacher_path, dev)
    y_all = load_labels(train_path)
    scfg = dcfg.get("shap", {})
    pool = sklearn_stratified_subset(y_all, dcfg.get("data", {}).get("max_train"), seed)
    pick = sklearn_stratified_subset(y_all[pool], scfg.get("n_train", 2000), seed + 2)
    idx = pool[pick]
    x, _ = load_images(train_path, idx)
    bg, _ = load_images(train_path, background_indices(y_all, dcfg, seed))
    pred = predict(teacher, x, dev)
    target = pred if scfg.get("target", "pred") == "pred" else y_all[idx]
    t0 = time.perf_counter()
    segments = segments_of(x, dcfg.get("superpixels", {}))
    t_slic = time.perf_counter() - t0
    vals = shap_values(teacher, x, target, bg, scfg.get("algorithm", "gradient"), int(scfg.get("nsamples", 50)),
                       int(scfg.get("batch_size", 50)), scfg.get("output", "prob"), seed, desc="shap (CAE targets)")
    maps = batch_superpixel_maps(vals, segments)
    seconds = time.perf_counter() - t0
    _save_npz(out_npz, idx=idx, y=y_all[idx], pred=pred, target=target, segments=segments, maps=maps,
              background_idx=background_indices(y_all, dcfg, seed))
    info = {"n": int(len(idx)), "seconds": round(seconds, 1), "slic_seconds": round(t_slic, 1),
            "segments_mean": float(segments.reshape(len(idx), -1).max(1).mean() + 1) if len(idx) else 0.0,
            "map_abs_mean": float(np.abs(maps).mean()) if len(idx) else 0.0}
    log.info("CAE targets: %s", info)
    return info


def run_teacher_eval(teacher_path: str, train_path: str, test_path: str, dcfg: dict, seed: int, device: str,
                     out_npz: str, out_timing: str) -> dict:
    """The evaluation images (``evaluate.n_test``), their SLIC segments and the teacher's SHAP, Grad-CAM
    and LIME superpixel maps for its own predictions (the targets every student explains too); the seconds
    of every explainer to ``out_timing``."""
    set_seed(seed, device=device)
    dev = resolve_device(device)
    teacher, _ = M.load_model(teacher_path, dev)
    bg_idx = background_indices(load_labels(train_path), dcfg, seed)
    bg, _ = load_images(train_path, bg_idx)
    ecfg = dcfg.get("evaluate", {})
    idx = sklearn_stratified_subset(load_labels(test_path), ecfg.get("n_test", 200), seed + 3)
    x, y = load_images(test_path, idx)
    segments = segments_of(x, dcfg.get("superpixels", {}))
    pred = predict(teacher, x, dev)
    maps, seconds = explain_all(teacher, x, segments, pred, ecfg.get("explainers", ALL_EXPLAINERS), bg, seed, "teacher")
    _save_npz(out_npz, idx=idx, y=y, pred=pred, target=pred, segments=segments, background_idx=bg_idx,
              **{f"maps_{k}": v for k, v in maps.items()})
    write_json(out_timing, {"explainer_seconds": seconds, "n_images": int(len(idx)), "device": str(dev)})
    return {"n": int(len(idx)), "seconds": seconds, "accuracy": float((pred == y).mean()) if len(y) else None}


# --- the autoencoder ---------------------------------------------------------------------------------------
def cae_spec(ccfg: dict, in_channels: int) -> dict:
    kwargs = {"in_channels": in_channels, "out_channels": 1, "activation": ccfg.get("activation", "tanh")}
    if ccfg.get("widths"):
        kwargs["widths"] = list(ccfg["widths"])
    return {"kind": "cae", "size": ccfg.get("size", "small"), "kwargs": kwargs}


def run_cae(targets_npz: str, train_path: str, dcfg: dict, seed: int, device: str, outputs: dict) -> dict:
    """Train the CAE on (image, teacher SHAP superpixel map) pairs with the L1 loss (section III-A2)."""
    set_seed(seed, device=device)
    dev = resolve_device(device)
    z = _load_npz(targets_npz)
    x, _ = load_images(train_path, z["idx"])
    e = torch.from_numpy(z["maps"][:, None].astype(np.float32))
    ccfg = dcfg.get("cae", {})
    spec = cae_spec(ccfg, x.shape[1])
    cae = M.build_from_spec(spec).to(dev)
    M.check_cae_input(cae, x.shape[2], x.shape[3])
    tr, va = lenient_val_split(z["y"], float(ccfg.get("val_fraction", 0.1)), seed)
    tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
    t0 = time.perf_counter()
    fitted = fit_cae(cae, x[tr_t], e[tr_t], (x[va_t], e[va_t]), ccfg, dev, seed)
    seconds = time.perf_counter() - t0
    size = spec["size"]
    zero = {"val_l1_of_zero_map": float(e[va_t].abs().mean()) if len(va) else None}
    metrics = {"size": size, "n_parameters": M.count_parameters(cae, trainable_only=False),
               "paper_parameters": M.PUBLISHED_CAE_PARAMETERS.get(size), "n_train": int(len(tr)),
               "n_val": int(len(va)), "best_epoch": fitted.best_epoch, "epochs_run": len(fitted.history),
               "device": str(dev), **zero, **(cae_errors(cae, x[va_t], e[va_t], dev, prefix="val_") if len(va) else {})}
    M.save_model(outputs["model"], spec, cae, {"role": "cae"})
    write_history(fitted.history, outputs["history"])
    write_json(outputs["metrics"], metrics)
    write_json(outputs["timing"], {"train_seconds": round(seconds, 1), "epoch_seconds": fitted.epoch_seconds,
                                   "device": str(dev)})
    show = va[:6] if len(va) else tr[:6]
    out = cae_outputs(cae, x[torch.as_tensor(show)], dev)[:, 0]
    explanation_grid(x[torch.as_tensor(show)].numpy(), z["segments"][show],
                     {"teacher SHAP (superpixels)": z["maps"][show], "CAE output": out},
                     f"CAE ({size}, {metrics['n_parameters']:,} parameters): held-out images", outputs["examples"])
    log.info("CAE: %s", {k: v for k, v in metrics.items() if k.startswith("val_")})
    return metrics


# --- students -------------------------------------------------------------------------------------------------
def student_arch(mcfg: dict, dcfg: dict) -> tuple[str, dict]:
    scfg = dcfg.get("student", {})
    arch = mcfg.get("arch") or scfg.get("arch")
    if not arch:
        raise XaipipeError("no student architecture: set xdistill.<dataset>.student.arch (or the method's arch)")
    kwargs = mcfg.get("arch_kwargs") if mcfg.get("arch") else scfg.get("arch_kwargs")
    return arch, dict(kwargs or {})


def run_student(variant: str, mcfg: dict, dcfg: dict, teacher_path: str, cae_path: str | None, train_path: str,
                test_path: str, seed: int, device: str, outputs: dict) -> dict:
    """Train one student with its registered method (:mod:`.methods`)."""
    set_seed(seed, device=device)
    dev = resolve_device(device)
    method = get_method(dict(mcfg))
    data = dcfg.get("data", {})
    x_tr, y_tr, _ = _split(train_path, data.get("max_train"), seed)
    x_te, y_te, _ = _split(test_path, data.get("max_test"), seed)
    c, size, k = x_tr.shape[1], x_tr.shape[2], _n_classes(y_tr, y_te)
    arch, arch_kwargs = student_arch(mcfg, dcfg)
    teacher, _ = M.load_model(teacher_path, dev)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if method.needs_cae:
        if not cae_path:
            raise XaipipeError(f"method {method.name!r} needs the trained CAE; the rule did not pass it")
        cae, cae_meta = M.load_model(cae_path, "cpu")
        cae_ckpt = cae_meta["spec"]
        spec = {"kind": "fused", "kwargs": {
            "student": {"arch": arch, "kwargs": arch_kwargs},
            "cae": {"size": cae_ckpt["size"], "kwargs": {k2: v for k2, v in cae_ckpt["kwargs"].items()
                                                        if k2 != "in_channels"}},
            "cae_features": method.params["cae_features"], "n_classes": k, "in_channels": c, "image_size": size}}
        student = M.build_from_spec(spec)
        student.cae.load_state_dict(cae.state_dict())
    else:
        spec = _classifier_spec(arch, arch_kwargs, c, k, size)
        student = M.build_from_spec(spec)
    student.to(dev)
    scfg = dcfg.get("student", {})
    tr, va = lenient_val_split(y_tr, float(scfg.get("val_fraction", 0.1)), seed)
    xt, yt = x_tr[torch.as_tensor(tr)], y_tr[tr]
    val = (x_tr[torch.as_tensor(va)], y_tr[va])
    method.setup(student, teacher, xt[:8].to(dev))
    desc = f"student {variant}"
    t0 = time.perf_counter()
    history: list[dict] = []
    epoch_seconds: list[float] = []  # of every row of the history, the init phase's first
    if method.init_epochs:
        init_terms = method.objective("init")
        init = fit(student, lambda m, xb, yb: method.loss(m, teacher, xb, yb, "init", init_terms), xt, yt, val, scfg,
                   dev, seed, f"{desc} (init)", extra_params=method.extra_parameters(), select_best=False,
                   epochs=method.init_epochs, extra_modules=[method.connectors])
        history += [{**h, "phase": "init"} for h in init.history]
        epoch_seconds += init.epoch_seconds
    terms = method.objective()  # the registered loss terms, built once
    main = fit(student, lambda m, xb, yb: method.loss(m, teacher, xb, yb, "main", terms), xt, yt, val, scfg, dev,
               seed, desc,
               extra_params=method.extra_parameters(), extra_modules=[method.connectors])
    history += [{**h, "phase": "main"} for h in main.history]
    epoch_seconds += main.epoch_seconds
    seconds = time.perf_counter() - t0
    pred = predict(student, x_te, dev)
    t_pred = predict(teacher, x_te, dev)
    metrics = {"variant": variant, "method": method.name, "arch": arch, "params": method.params,
               "accuracy": float((pred == y_te).mean()), "n_errors": int((pred != y_te).sum()),
               "n_test": int(len(y_te)), "agreement_with_teacher": float((pred == t_pred).mean()),
               "n_parameters": M.count_parameters(student, trainable_only=False),  # frozen CAE included (Table II)
               "n_trainable_parameters": M.count_parameters(student, trainable_only=True),
               "n_connector_parameters": sum(p.numel() for p in method.extra_parameters()),
               "n_train": int(len(tr)), "n_val": int(len(va)), "epochs_run": len(main.history),
               "init_epochs": method.init_epochs, "best_epoch": main.best_epoch, "device": str(dev), "seed": seed}
    M.save_model(outputs["model"], spec, student, {"role": "student", "variant": variant, "method": method.name})
    write_history(history, outputs["history"])
    write_json(outputs["metrics"], metrics)
    write_json(outputs["timing"], {"train_seconds": round(seconds, 1), "epoch_seconds": epoch_seconds,
                                   "device": str(dev)})
    log.info("%s: test accuracy %.4f (teacher agreement %.4f), %d parameters", desc, metrics["accuracy"],
             metrics["agreement_with_teacher"], metrics["n_parameters"])
    return metrics


def run_student_explain(student_path: str, teacher_eval_npz: str, train_path: str, test_path: str, dcfg: dict,
                        seed: int, device: str, out_npz: str, out_timing: str, desc: str = "student") -> dict:
    """The student's explanations of the teacher-predicted classes on the evaluation images and segments;
    the seconds of every explainer to ``out_timing``."""
    set_seed(seed, device=device)
    dev = resolve_device(device)
    student, _ = M.load_model(student_path, dev)
    ev = _load_npz(teacher_eval_npz)
    bg, _ = load_images(train_path, ev["background_idx"])
    x, _ = load_images(test_path, ev["idx"])
    pred = predict(student, x, dev)
    explainers = dcfg.get("evaluate", {}).get("explainers", ALL_EXPLAINERS)
    maps, seconds = explain_all(student, x, ev["segments"], ev["target"], explainers, bg, seed, desc)
    extra = {}
    if isinstance(student, M.FusedStudent):
        extra["cae"] = cae_outputs(student.cae, x, dev)[:, 0]
    _save_npz(out_npz, pred=pred, **{f"maps_{k}": v for k, v in maps.items()}, **extra)
    write_json(out_timing, {"explainer_seconds": seconds, "n_images": int(len(x)), "device": str(dev)})
    return {"n": int(len(x)), "seconds": seconds}


# --- tables and figures -----------------------------------------------------------------------------------------
def _students(student_files: dict[str, dict], teacher_eval: dict | None, top_k: int, explainers: list[str]) -> dict:
    out = {}
    for variant, files in student_files.items():
        m = read_json(files["metrics"])
        entry = {"method": m["method"], "arch": m["arch"], "metrics": m}
        if teacher_eval is not None and files.get("explanations"):
            s = _load_npz(files["explanations"])
            entry["consistency"] = consistency(teacher_eval, s, teacher_eval["y"], teacher_eval["segments"], top_k,
                                               explainers)
        out[variant] = entry
    return out


def run_tables(dataset: str, dcfg: dict, teacher_metrics: str, cae_metrics: str, teacher_eval_npz: str,
               student_files: dict[str, dict], outputs: dict) -> dict:
    ecfg = dcfg.get("evaluate", {})
    top_k = int(ecfg.get("top_k", 2))
    ev = _load_npz(teacher_eval_npz)
    students = _students(student_files, ev, top_k, list(ecfg.get("explainers", ALL_EXPLAINERS)))
    teacher = read_json(teacher_metrics)
    tables = write_tables(dataset, teacher, read_json(cae_metrics), students, top_k, outputs)
    write_json(outputs["summary"], {
        "dataset": dataset, "top_k": top_k, "n_eval": int(len(ev["idx"])),
        "teacher_eval_accuracy": float((ev["pred"] == ev["y"]).mean()) if len(ev["y"]) else None,
        "consistency": {v: s.get("consistency") for v, s in students.items()},
        "tables": {k: t.to_dict(orient="records") for k, t in tables.items()}})
    return tables


def run_figures(dataset: str, dcfg: dict, teacher_eval_npz: str, test_path: str, student_files: dict[str, str],
                outputs: dict[str, str]) -> None:
    """One PNG per explainer: example images, the teacher's map and every student's map."""
    ev = _load_npz(teacher_eval_npz)
    n = min(int(dcfg.get("evaluate", {}).get("examples", 4)), len(ev["idx"]))
    rows = np.arange(n)
    images = load_images(test_path, ev["idx"][rows])[0].numpy()
    students = {v: _load_npz(p) for v, p in student_files.items()}
    for name, path in outputs.items():
        key = f"maps_{name}"
        cols = {"teacher": ev[key][rows]} if key in ev else {}
        subs = {"teacher": [f"pred {int(p)}" for p in ev["pred"][rows]]}
        for v, s in students.items():
            if key in s:
                cols[v] = s[key][rows]
                subs[v] = [f"pred {int(p)}" for p in s["pred"][rows]]
        if name == "shap":
            for v, s in students.items():
                if "cae" in s:
                    cols[f"{v}: CAE output"] = s["cae"][rows]
        if not cols:
            raise XaipipeError(f"no {name} explanations to plot; add {name} to evaluate.explainers")
        explanation_grid(images, ev["segments"][rows], cols,
                         f"{dataset}: {name} on SLIC superpixels (teacher-predicted class)", path, subs)


__all__ = ["background_indices", "run_cae", "run_cae_targets", "run_figures", "run_student", "run_student_explain",
           "run_tables", "run_teacher", "run_teacher_eval", "segments_of"]
