"""Report assembly: table export (published column required, CSV/MD/LaTeX) and the static index."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from xaipipe.errors import XaipipeError
from xaipipe.report import build_index, config_hash, export_table


def test_export_table_writes_three_formats_and_requires_published(tmp_path):
    src = tmp_path / "t.csv"
    pd.DataFrame({"model": ["a", "b"], "accuracy": [0.9, 0.8], "published_accuracy": [0.91, None]}).to_csv(src, index=False)
    info = export_table(src, tmp_path / "out", "acc", "Accuracy & more")
    assert info["published_columns"] == ["published_accuracy"] and info["rows"] == 2
    for suffix in (".csv", ".md", ".tex"):
        assert (tmp_path / "out" / f"acc{suffix}").stat().st_size > 0
    tex = (tmp_path / "out" / "acc.tex").read_text()
    assert "\\begin{tabular}" in tex and "Accuracy \\& more" in tex and "--" in tex
    assert "published_accuracy" in (tmp_path / "out" / "acc.md").read_text()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"model": ["a"], "accuracy": [0.9]}).to_csv(bad, index=False)
    with pytest.raises(XaipipeError, match="published"):
        export_table(bad, tmp_path / "out", "bad")
    with pytest.raises(XaipipeError, match="missing"):
        export_table(tmp_path / "nope.csv", tmp_path / "out", "x")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and not v.startswith("#"):
                self.links.append(v)


def test_index_links_only_existing_files(tmp_path):
    res = tmp_path / "results"
    (res / "ng20" / "models" / "teacher").mkdir(parents=True)
    (res / "ng20" / "models" / "teacher" / "metrics.json").write_text("{}")
    (res / "ng20" / "models" / "teacher" / "history.png").write_bytes(b"\x89PNG")
    (res / "report" / "tables").mkdir(parents=True)
    (res / "report" / "tables" / "acc.csv").write_text("a,published\n1,2\n")
    (res / "report" / "tables" / "acc.md").write_text("|a|")
    (res / "ng20" / "x.pt.tmp123").write_text("half")  # never listed: not an artifact kind
    cfg = {"seed": 0, "datasets": ["ng20"]}
    info = build_index(res, res / "index.html", cfg, [{"name": "acc", "caption": "Accuracy"}])
    html = (res / "index.html").read_text()
    p = _Links()
    p.feed(html)
    assert p.links and all((res / link).is_file() for link in p.links), p.links
    assert "ng20/models/teacher/metrics.json" in html and "x.pt.tmp" not in html
    assert info["config_hash"] == config_hash({"datasets": ["ng20"], "seed": 0}) and info["config_hash"][:16] in html
    assert info["n_files"] == 4
    assert re.search(r"Accuracy", html)
    assert config_hash(cfg) != config_hash({**cfg, "seed": 1})


def test_index_renders_in_headless_chromium(tmp_path):
    """The page a person opens: rendered by a real browser (skipped where Chromium is not installed)."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium) for the headless rendering check")
    res = tmp_path / "results"
    (res / "mnist" / "models" / "teacher").mkdir(parents=True)
    (res / "mnist" / "models" / "teacher" / "metrics.json").write_text("{}")
    build_index(res, res / "index.html", {"seed": 0})
    shot = tmp_path / "shot.png"
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,800",
                          f"--screenshot={shot}", (res / "index.html").as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5000, out.stderr[-2000:]


def test_published_columns_accept_paper_suffix_but_not_notes():
    from xaipipe.report import published_columns

    df = pd.DataFrame(columns=["shap", "shap_paper", "paper_accuracy", "paper_dataset", "paper_source", "note"])
    assert published_columns(df) == ["shap_paper", "paper_accuracy"]
    assert published_columns(pd.DataFrame(columns=["a", "paper_dataset"])) == []


def test_results_section_from_tables_and_rankings_and_readme_update(tmp_path):
    from xaipipe.report import README_END, README_START, results_section, update_readme

    src = tmp_path / "t.csv"
    pd.DataFrame({"model": ["teacher"], "accuracy": [0.8123], "published_accuracy": [0.83]}).to_csv(src, index=False)
    export_table(src, tmp_path / "tables", "models_accuracy", "Test accuracy")
    ranking = tmp_path / "ranking.csv"
    pd.DataFrame({"rank": [1, 2], "variant": ["greedy_gn", "random"], "method": ["greedy", "random"],
                  "aopc_accuracy_zero": [0.61, 0.05], "aopc_accuracy_zero_ci": ["[..]", "[..]"]}).to_csv(ranking, index=False)
    cfg = {"datasets": ["ng20"], "seed": 0}
    md = results_section(tmp_path / "tables", [{"name": "models_accuracy", "caption": "Test accuracy"}], cfg,
                         {"ng20 teacher": ranking})
    assert "#### Test accuracy" in md and "published_accuracy" in md and "0.8123" in md
    assert "results/report/tables/models_accuracy.md" in md and config_hash(cfg)[:16] in md
    assert "greedy_gn" in md and "aopc_accuracy_zero_ci" not in md  # the README shows the AOPC columns only
    assert md.count("**Test accuracy**") == 0  # the caption line became the heading
    with pytest.raises(XaipipeError, match="missing"):
        results_section(tmp_path / "tables", [{"name": "nope"}], cfg)

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\nquoted `{README_START}` in prose\n\n## Results\n{README_START}\nold text\n{README_END}\n"
                      "\n## Next\nkept\n")
    assert update_readme(readme, md) is True
    text = readme.read_text()
    assert "old text" not in text and "#### Test accuracy" in text and text.endswith("## Next\nkept\n")
    assert text.startswith(f"# x\nquoted `{README_START}` in prose\n")  # the quoted marker is not the block
    assert update_readme(readme, md) is False and readme.read_text() == text  # idempotent
    (tmp_path / "plain.md").write_text("# no markers\n")
    with pytest.raises(XaipipeError, match="results:start"):
        update_readme(tmp_path / "plain.md", md)


def test_readme_command(tmp_path, capsys):
    from xaipipe.cli import main
    from xaipipe.report import README_END, README_START

    section = tmp_path / "README_results.md"
    section.write_text("#### A table\n\n| a |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_START}\n{README_END}\n")
    assert main(["readme", "--section", str(section), "--readme", str(readme)]) == 0
    assert "| a |" in readme.read_text() and "updated" in capsys.readouterr().out
    assert main(["readme", "--section", str(tmp_path / "missing.md"), "--readme", str(readme)]) == 2
    assert "run the pipeline first" in capsys.readouterr().err


def test_results_section_marks_significant_differences_and_shows_distortion(tmp_path):
    from xaipipe.report import results_section

    ranking = tmp_path / "ranking.csv"
    pd.DataFrame({"rank": [1, 2, 3], "variant": ["greedy_gn", "lime", "random"],
                  "aopc_accuracy_zero": [0.61, 0.6, 0.05],
                  "aopc_accuracy_zero_vs_greedy_gn": [None, -0.01, -0.56],
                  "aopc_accuracy_zero_vs_greedy_gn_ci": [None, "[-0.03, 0.01]", "[-0.6, -0.5]"],
                  "aopc_accuracy_zero_vs_greedy_gn_p_adj": [None, 0.8, 0.001],
                  "aopc_accuracy_zero_vs_greedy_gn_sig": [None, None, "*"]}).to_csv(ranking, index=False)
    dist = tmp_path / "distortion_ranking.csv"
    pd.DataFrame({"rank": [1, 2], "variant": ["rde_l2", "greedy_gn"], "aopc_distortion_l2": [0.9, 0.3],
                  "rank_accuracy_zero": [5, 1], "aopc_distortion_l2_vs_greedy_gn": [0.6, None],
                  "aopc_distortion_l2_vs_greedy_gn_sig": ["*", None]}).to_csv(dist, index=False)
    md = results_section(tmp_path, [], {"datasets": ["planted"]}, {"planted teacher": ranking},
                         distortion={"planted teacher": dist})
    deletion, distortion = md.split("#### Distortion-curve ranking, planted teacher")
    assert "vs greedy_gn (zero)" in deletion
    assert "-0.560*" in deletion and "-0.010" in deletion and "-0.010*" not in deletion
    assert "| +0.000 " not in deletion  # no self-comparison cell for greedy_gn
    assert "0.61 " in deletion  # numeric columns keep their number formatting
    assert "Holm" in deletion and "`ranking.md`" in deletion
    assert "+0.600*" in distortion and "rank_accuracy_zero" in distortion and "`distortion_ranking.md`" in distortion
    assert "significant at alpha = 0.05 after Holm" in deletion
    cfg = {"datasets": ["planted"], "planted": {"explain": {"models": ["teacher"]}, "evaluate": {"alpha": 0.01}}}
    assert "significant at alpha = 0.01 after Holm" in results_section(tmp_path, [], cfg, {"planted teacher": ranking})
