"""End-to-end runs of the real Snakefile on the tiny config (in a temporary working directory)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
needs_shared = pytest.mark.skipif(
    not (SHARED / "20news-bydate").is_dir(),
    reason=f"real datasets not found at {SHARED} (the shared mirror); these end-to-end runs need it")


def smk_command(workdir: Path, *args: str, overlays: tuple[dict, ...] = (), targets: tuple[str, ...] = ()) -> list[str]:
    """The snakemake command line on the tiny config plus ``overlays`` (targets go first: after
    --configfile they would be taken for more config files)."""
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(ROOT / "config" / "tiny.yaml")]
    for i, ov in enumerate(overlays):
        p = workdir / f"overlay{i}.yaml"
        p.write_text(yaml.safe_dump(ov))
        cmd.append(str(p))
    return cmd + list(args)


def smk(workdir: Path, *args: str, overlays: tuple[dict, ...] = (), check: bool = True,
        targets: tuple[str, ...] = (), **popen) -> subprocess.CompletedProcess:
    cmd = smk_command(workdir, *args, overlays=overlays, targets=targets)
    res = subprocess.run(cmd, capture_output=True, text=True, **popen)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def job_counts(output: str) -> dict[str, int]:
    """Parse snakemake's 'Job stats' table."""
    counts = {}
    block = output.split("Job stats:", 1)
    if len(block) < 2:
        return counts
    for line in block[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


# --- a synthetic mirror in the official formats (no shared data needed) ------------------------------
GROUPS = ["alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
          "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
          "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med", "sci.space",
          "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast", "talk.politics.misc",
          "talk.religion.misc"]
FILLER = ("the of and to in is that it for on with as was be this are by at from or have an not but "
          "they which one you all were we there can been has more if will when would who so what").split()


def _doc(rng, keywords, n):
    words = [rng.choice(keywords) if rng.random() < 0.3 else rng.choice(FILLER) for _ in range(n)]
    return " ".join(words)


def write_synthetic_mirror(root: Path) -> Path:
    import gzip
    import random

    import numpy as np

    rng = random.Random(0)
    for split, n in (("train", 12), ("test", 6)):
        for gi, group in enumerate(GROUPS):
            kw = [f"{group.split('.')[-1]}{k}" for k in range(5)] + [group.split(".")[-1]]
            d = root / "20news-bydate" / f"20news-bydate-{split}" / group
            d.mkdir(parents=True)
            for i in range(n):
                body = _doc(rng, kw, rng.randint(20, 120))
                msg = f"From: user{i}@example.com\nSubject: Re: {kw[0]} question\nLines: 3\n\n{body}\n-- \nsig line\n"
                (d / str(10000 * gi + i)).write_bytes(msg.encode("latin-1"))
    ag = root / "ag_news"
    ag.mkdir(parents=True)
    lines = []
    for i in range(120):
        c = i % 4
        kw = [f"topic{c}w{k}" for k in range(6)]
        lines.append(f'"{c + 1}","{_doc(rng, kw, 6)} #39;s","{_doc(rng, kw, 30)} #36;5 quot;x quot;"')
    (ag / "test.csv").write_text("\n".join(lines) + "\n")
    nrng = np.random.default_rng(0)
    mn = root / "mnist"
    mn.mkdir()
    for prefix, n in (("train", 300), ("t10k", 100)):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = (nrng.random((n, 28, 28)) * 60).astype(np.uint8)
        for i, label in enumerate(y):  # a class-dependent bright block
            x[i, 2 * label:2 * label + 6, 4:24] = 255
        with gzip.open(mn / f"{prefix}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in x.shape) + x.tobytes())
        with gzip.open(mn / f"{prefix}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + y.tobytes())
    return root


def check_explanations(res: Path) -> None:
    """Every registered method ran on the planted corpus: one value per token, heatmaps, runtimes."""
    from xaipipe.explain import METHODS

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    variants = cfg["planted"]["explain"]["methods"]
    public = {m for m in METHODS if not m.startswith("_")}  # "_name": helpers registered by unit tests
    assert {v["method"] for v in variants.values()} == public, "a registered method is not configured"
    base = res / "planted" / "explain" / "teacher"
    docs = pd.read_parquet(base / "documents.parquet")
    assert len(docs) >= 2 and {"correct", "misclassified"} >= set(docs["set"])
    for variant in variants:
        rel = pd.read_parquet(base / variant / "relevance.parquet")
        assert list(rel["id"]) == list(docs["id"]), variant
        for toks, r in zip(rel["tokens"], rel["relevance"]):
            assert len(toks) == len(r) and all(map(lambda v: v == v, r)), variant
        assert "seconds" not in rel.columns  # wall times live in timing.json (byte-identical reruns)
        params = json.loads((base / variant / "params.json").read_text())
        assert params["method"] == variants[variant]["method"] and "seconds_total" not in params
        timing = json.loads((base / variant / "timing.json").read_text())
        assert timing["seconds_per_doc"] >= 0 and len(timing["seconds"]) == len(docs)
        assert any((base / variant / "heatmaps").glob("*.png")) and any((base / variant / "heatmaps").glob("*.html"))
    ev = res / "planted" / "evaluate" / "teacher"
    ranking = pd.read_csv(ev / "ranking.csv")
    assert set(ranking["variant"]) == set(variants) | {"random"}
    assert {"aopc_accuracy_zero", "aopc_accuracy_gaussian", "aopc_accuracy_neutral", "planted_precision@5"} <= set(
        ranking.columns)
    for name in ("accuracy_zero", "accuracy_gaussian", "accuracy_neutral", "distortion_l2"):
        assert (ev / "figures" / f"{name}.png").stat().st_size > 0
    # paired comparisons with the references, the distortion ranking and the report's claims (issue #17)
    assert {"aopc_accuracy_zero_vs_greedy_gn", "aopc_accuracy_zero_vs_random_p_adj",
            "aopc_accuracy_zero_vs_random_sig"} <= set(ranking.columns)
    assert ranking["aopc_accuracy_zero_vs_greedy_gn"].isna().sum() == 1  # greedy_gn itself
    assert list(ranking["aopc_accuracy_zero"]) == sorted(ranking["aopc_accuracy_zero"], reverse=True)
    dist = pd.read_csv(ev / "distortion_ranking.csv")
    assert set(dist["variant"]) == set(variants) | {"random"} and "aopc_distortion_l2_vs_random" in dist.columns
    comparisons = pd.read_csv(ev / "comparisons.csv")
    assert set(comparisons["table"]) == {"ranking", "distortion_ranking"} and comparisons["p_adj"].between(0, 1).all()
    from xaipipe.evaluate.claims import CLAIMS

    claims = pd.read_csv(ev / "claims.csv")
    assert list(claims["claim"]) == [c.claim for c in CLAIMS]
    assert set(claims["verdict"]) <= {"supported", "contradicted", "inconclusive", "not measured"}
    summary = pd.read_csv(res / "summary" / "claims.csv")
    assert len(summary) == len(CLAIMS) and set(summary["dataset"]) == {"planted"}
    curves = pd.read_csv(ev / "greedy_gn" / "curves.csv")
    k0 = curves[(curves["curve"] == "accuracy") & (curves["k"] == 0)]
    assert (k0["mean"] == 1.0).all()  # deletion at k = 0: the selected correct documents are all correct
    page = res / "planted" / "compare" / "teacher" / "index.html"  # one document under every method
    assert page.is_file() and len(list((page.parent / "docs").glob("*.js"))) == len(docs)
    index = (res / "index.html").read_text()
    assert "planted/compare/teacher/index.html" in index and index.index("Ranking by AOPC") < index.index("id='files'")
    check_pages_in_chromium(res)


def check_pages_in_chromium(res: Path) -> None:
    """The run's results/index.html and the planted comparison page, opened from file:// in headless Chromium
    (skipped without Chromium): no console error or failed load, every link resolves, the document picker
    changes what is shown."""
    from urllib.parse import unquote, urlparse

    from xaipipe.browser import Chromium, find_chromium

    if find_chromium() is None:
        return
    exists = lambda u: not u.startswith("file:") or Path(unquote(urlparse(u).path)).exists()  # noqa: E731
    links = ("(() => { const here = location.href.split('#')[0]; return [...document.querySelectorAll("
             "'a[href],img[src],script[src]')].map(e => e.href || e.src).filter(u => u.split('#')[0] !== here); })()")
    with Chromium() as b:
        tab = b.page()
        tab.goto(res / "index.html")
        urls = tab.eval(links)
        assert len(urls) > 100 and [u for u in urls if not exists(u)] == []
        tab.goto(res / "planted" / "compare" / "teacher" / "index.html")
        tab.wait_for("window.xaiCompare && xaiCompare.ready")
        docs = tab.eval("xaiCompare.catalogue.docs")
        other = next(d for d in docs if d["label"] != docs[0]["label"])  # a document of another class
        tab.eval(f"{{ const s = document.getElementById('cls'); s.value = '{other['label']}'; "
                 "s.dispatchEvent(new Event('change')); }")
        tab.wait_for(f"xaiCompare.renders > 1 && xaiCompare.shown !== {json.dumps(docs[0]['id'])}")
        shown = next(d for d in docs if d["id"] == tab.eval("xaiCompare.shown"))
        assert shown["label"] == other["label"] and tab.eval("document.querySelectorAll('#rows tr').length") > 20
        assert [u for u in tab.eval(links) if not exists(u)] == []
        assert tab.problems == [], tab.problems


@pytest.mark.slow
def test_tiny_run_on_synthetic_mirror(tmp_path):
    """The whole DAG on files the test writes in the official formats (checksums off: they are not the
    official bytes), without network or shared data."""
    mirror = write_synthetic_mirror(tmp_path / "mirror")
    wd = tmp_path / "run"
    wd.mkdir()
    ov = {"data_mirror": str(mirror), "offline": True, "verify_checksums": False}
    smk(wd, overlays=(ov,))
    res = wd / "results"
    manifest = json.loads((res / "ng20" / "data" / "manifest.json").read_text())
    assert manifest["verified"] is False
    assert manifest["items"]["20news-bydate-train"]["source"] == "mirror"
    stats = json.loads((res / "ng20" / "data" / "stats.json").read_text())
    assert stats["train"]["n_docs"] == 240 and stats["test"]["n_docs"] == 120
    ag = json.loads((res / "agnews" / "data" / "stats.json").read_text())
    assert ag["resplit_from_test"] is True and ag["train"]["n_docs"] == 96
    df = pd.read_parquet(res / "agnews" / "data" / "train.parquet")
    assert not df["text"].str.contains("#39;|quot;|#36;").any()
    for d in ("ng20", "agnews", "mnist"):
        for m in ("teacher", "student"):
            assert json.loads((res / d / "models" / m / "metrics.json").read_text())["n_test"] > 0
    summary = pd.read_csv(res / "summary" / "models.csv")  # 4 datasets x 2 models + a TF-IDF reference per text dataset
    assert len(summary) == 11 and (summary["model"] == "tfidf_reference").sum() == 3
    check_explanations(res)
    # rerun: nothing to do
    assert "Nothing to be done" in smk(wd, "-n", overlays=(ov,)).stdout
    check_partial_reruns(wd, ov)


def check_partial_reruns(wd: Path, ov: dict) -> None:
    """Issue 'reliability', partial reruns (dry runs on the finished run): a method parameter reruns only
    that method's maps, its curves and the figures/tables showing it; a teacher parameter reruns everything
    downstream of the teacher and nothing upstream; touching a result by hand never retrains."""
    n_methods = len(list((wd / "results" / "planted" / "explain" / "teacher").glob("*/relevance.parquet")))
    shown = {"evaluation_figures": 1, "claims_summary": 1, "compare_page": 1, "report_index": 1, "report_readme": 1,
             "all": 1}

    change = {"planted": {"explain": {"methods": {"greedy_gn": {"k": 4}}}}}
    out = smk(wd, "-n", overlays=(ov, change))
    # report_table: the claims table (results/summary/claims.csv) shows the method
    assert job_counts(out.stdout) == {"explain": 1, "evaluate": 1, "report_table": 1, **shown}, out.stdout[-3000:]
    assert "results/planted/explain/teacher/greedy_gn/relevance.parquet" in out.stdout

    change = {"planted": {"models": {"teacher": {"lr": 0.02}}}}
    counts = job_counts(smk(wd, "-n", overlays=(ov, change)).stdout)
    assert counts.pop("train_text_model") == 1  # the teacher, not the student
    assert counts.pop("explain") == counts.pop("evaluate") == n_methods
    assert {"select_documents": 1, "evaluate_random": 1, "models_summary": 1, **shown}.items() <= counts.items()
    assert not {"fetch_data", "prepare_text", "embedding", "train_image_model"} & set(counts), counts

    change = {"planted": {"evaluate": {"alpha": 0.1}}}  # a comparison setting: the tables only, no curves
    counts = job_counts(smk(wd, "-n", overlays=(ov, change)).stdout)
    assert counts == {"report_table": 1, **shown}, counts

    model = wd / "results" / "planted" / "models" / "teacher" / "model.pt"
    stamp = model.stat()
    os.utime(model)  # touched by hand, content unchanged
    assert "Nothing to be done" in smk(wd, "-n", overlays=(ov,)).stdout  # <= 1 MB: compared by checksum
    counts = job_counts(smk(wd, "-n", "--max-checksum-file-size", "0", overlays=(ov,)).stdout)  # by mtime
    assert "train_text_model" not in counts and counts["explain"] == n_methods, counts  # dependents only
    os.utime(model, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if not (SHARED / "20news-bydate").is_dir():
        pytest.skip(f"real datasets not found at {SHARED}")
    wd = tmp_path_factory.mktemp("tiny")
    # the planted corpus (explanations + evaluation of every method) runs in the synthetic-mirror test
    # stages 7+ (distillation, RNN cells, XNet) also run in the synthetic-mirror test; here the core DAG
    # and the report on the real data
    mirror = {"data_mirror": str(SHARED), "datasets": ["ng20", "agnews", "mnist"],
              "distill_mnist": None, "distill_feedback": None, "rnn": None, "xnet": None}
    smk(wd, overlays=(mirror,))
    return wd, mirror


@pytest.mark.slow
@needs_shared
def test_tiny_run_produces_every_artifact(tiny_run):
    wd, _ = tiny_run
    res = wd / "results"
    for d in ("ng20", "agnews", "mnist"):
        stats = json.loads((res / d / "data" / "stats.json").read_text())
        assert stats["train"]["n_docs"] > 0 and stats["test"]["n_docs"] > 0
        for m in ("teacher", "student"):
            mdir = res / d / "models" / m
            metrics = json.loads((mdir / "metrics.json").read_text())
            for key in ("accuracy", "per_class_accuracy", "confusion_matrix", "n_parameters"):
                assert key in metrics, (d, m, key)
            assert json.loads((mdir / "timing.json").read_text())["train_seconds"] >= 0
            assert 0.0 <= metrics["accuracy"] <= 1.0
            assert (mdir / "model.pt").stat().st_size > 0
            hist = pd.read_csv(mdir / "history.csv")
            # at least the configured 2 epochs; more where min_steps asks for them, never an early stop before
            assert list(hist["epoch"]) == list(range(1, len(hist) + 1)) and len(hist) >= 2
            assert (mdir / "history.png").stat().st_size > 0
            assert (wd / "benchmarks" / d / f"train_{m}.tsv").is_file()
            assert (wd / "logs" / d / f"train_{m}.log").is_file()
    for d in ("ng20", "agnews"):
        assert (res / d / "embedding" / "vectors.npy").is_file()
        assert (res / d / "data" / "length_histogram.png").is_file()
        df = pd.read_parquet(res / d / "data" / "train.parquet")
        assert {"id", "text", "tokens", "n_tokens", "label", "label_name"} <= set(df.columns)
    ag = json.loads((res / "agnews" / "models" / "teacher" / "metrics.json").read_text())
    assert ag["comparable_with_paper"] is False and "NOT comparable" in ag["note"]
    table = pd.read_csv(res / "summary" / "models.csv")
    assert len(table) == 8 and "published_accuracy" in table.columns  # 3 x (teacher, student) + 2 references
    assert sorted(table.loc[table["model"] == "tfidf_reference", "dataset"]) == ["agnews", "ng20"]
    # no temporary files left behind by the atomic writers
    assert not [p for p in res.rglob("*.tmp*")]


@pytest.mark.slow
@needs_shared
def test_rerun_does_nothing_and_param_change_reruns_only_dependents(tiny_run):
    wd, mirror = tiny_run
    out = smk(wd, "-n", overlays=(mirror,))
    assert "Nothing to be done" in out.stdout + out.stderr
    change = {"ng20": {"models": {"student": {"lr": 0.02}}}}  # config.yaml: 0.01
    out = smk(wd, "-n", overlays=(mirror, change))
    counts = job_counts(out.stdout + out.stderr)
    # the accuracy table, the index and the README results section show the model
    report = {"report_table": 1, "report_index": 1, "report_readme": 1}
    assert counts == {"train_text_model": 1, "models_summary": 1, **report, "all": 1}, counts
    change = {"ng20": {"embedding": {"window": 3}}}
    counts = job_counts(smk(wd, "-n", overlays=(mirror, change)).stdout)
    assert counts == {"embedding": 1, "train_text_model": 2, "models_summary": 1, **report, "all": 1}, counts


@pytest.mark.slow
def test_offline_without_data_fails_fast_with_instructions(tmp_path):
    ov = {"data_mirror": None, "offline": True, "datasets": ["mnist"]}
    res = smk(tmp_path, "--until", "fetch_data", overlays=(ov,), check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs" / "mnist" / "fetch_data.log").read_text()
    assert "train-images-idx3-ubyte.gz" in log
    assert "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in log
    assert str(Path("data/raw/mnist")) in log and "data_mirror" in log
    assert not (tmp_path / "results" / "mnist" / "data" / "manifest.json").exists()
