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


# --- the index leads with results (issue #18) -------------------------------------------------------------
def _results_tree(tmp_path, significance: bool = True):
    """A results folder as the pipeline leaves it for one explained model (synthetic data)."""
    from xaipipe.compare import synthetic_outputs, write_compare

    res = tmp_path / "results"
    kw = synthetic_outputs(res, n_docs=6, n_variants=4, n_words=20, n_classes=3, K=4)
    cmp_dir = res / "planted" / "compare" / "teacher"
    write_compare(cmp_dir / "index.html", cmp_dir / "docs", **kw, links={"results index": "../../../index.html"})
    ev = res / "planted" / "evaluate" / "teacher"
    rk = pd.read_csv(ev / "ranking.csv")
    if significance:  # the columns of issue #17, as they may come: a p-value and a corrected decision per test
        rk["vs_greedy_gn_p"] = [0.001 * (i + 1) if i < 2 else 0.4 for i in range(len(rk))]
        rk["vs_greedy_gn_significant"] = [i < 2 for i in range(len(rk))]
        rk["vs_random_p"] = 0.2
    rk.to_csv(ev / "ranking.csv", index=False)
    rk.to_markdown(ev / "ranking.md")
    pd.DataFrame({"rank": [1, 2], "variant": ["method_01", "random"], "auc": [0.93, 0.51],
                  "auc_ci": ["[0.900, 0.960]", "[0.450, 0.570]"]}).to_csv(ev / "correctness.csv", index=False)
    (ev / "figures").mkdir()
    for name in ("distortion_l2", "accuracy_gaussian", "accuracy_zero"):
        (ev / "figures" / f"{name}.png").write_bytes(b"\x89PNG")
    (res / "summary").mkdir()
    pd.DataFrame({"dataset": ["planted", "planted", "planted", "mnist"],
                  "model": ["teacher", "student", "tfidf_reference", "teacher"],
                  "accuracy": [0.97, 0.61, 0.99, 0.9], "published_accuracy": [None, None, None, 0.98],
                  "vs_tfidf": [-0.02, -0.38, None, None]}).to_csv(res / "summary" / "models.csv", index=False)
    tables = res / "report" / "tables"
    tables.mkdir(parents=True)
    for name in ("models_accuracy", "rnn_table4_5"):
        pd.DataFrame({"model": ["a"], "accuracy": [0.5], "published_accuracy": [0.6]}).to_csv(tables / f"{name}.csv",
                                                                                              index=False)
        (tables / f"{name}.md").write_text("| a |")
    cfg = {"seed": 0, "datasets": ["mnist", "planted"]}
    build_index(res, res / "index.html", cfg, [{"name": "models_accuracy", "caption": "Test accuracy"},
                                               {"name": "rnn_table4_5", "caption": "RNN cells"}],
                explained=[{"dataset": "planted", "model": "teacher"}])
    return res


def test_index_leads_with_results_and_marks_significance(tmp_path):
    res = _results_tree(tmp_path)
    text = (res / "index.html").read_text()
    p = _Links()
    p.feed(text)
    assert p.links and all((res / link).exists() for link in p.links), [x for x in p.links if not (res / x).exists()]
    # order: results (teacher vs reference, comparison page, ranking, figures, correctness), tables, files
    marks = ["planted/compare/teacher/index.html", "Ranking by AOPC", "accuracy_zero.png", "accuracy_gaussian.png",
             "distortion_l2.png", "Correctness against the planted", "planted: the teacher beside its TF-IDF reference",
             "id='tables'", "id='files'", "id='config'"]
    pos = [text.index(m) for m in marks]
    assert pos == sorted(pos), list(zip(marks, pos))
    assert "mnist" not in text[:text.index("id='tables'")].split("<nav>")[1].split("</nav>")[0]  # nothing to compare
    # significance: one column per test, the p-value and a mark where the table says significant
    ranking = text[text.index("Ranking by AOPC"):text.index("Correctness against")]
    assert "vs_greedy_gn (p, *)" in ranking and "vs_random (p, *)" in ranking
    assert ranking.count("<b class='sig'>*</b>") == 2 and "0.001" in ranking and "sig-absent" not in ranking
    assert "vs_greedy_gn_significant" not in ranking  # merged into the test's column
    assert "[0.1, 0.9]" in ranking  # bootstrap intervals beside the AOPC
    # every table of the source reports one click away (expandable, with its files)
    for name in ("models_accuracy", "rnn_table4_5"):
        block = text[text.index(f"<details id='table-{name}'>"):]
        assert block.index("<table class='r'>") < block.index("</details>")


def test_index_without_significance_columns_says_so(tmp_path):
    text = (_results_tree(tmp_path, significance=False) / "index.html").read_text()
    assert "sig-absent" in text and "<b class='sig'>" not in text


def test_significance_columns_by_name():
    from xaipipe.report import significance_columns

    df = pd.DataFrame(columns=["rank", "vs_greedy_gn_p", "vs_greedy_gn_significant", "vs_random_significant",
                               "significant", "aopc_accuracy_zero"])
    assert significance_columns(df) == {
        "vs_greedy_gn": {"p": "vs_greedy_gn_p", "significant": "vs_greedy_gn_significant"},
        "vs_random": {"p": None, "significant": "vs_random_significant"},
        "": {"p": None, "significant": "significant"}}
    # the paired comparisons of the rankings branch: difference, interval, Holm-corrected p, "*"
    df = pd.DataFrame(columns=["variant", "d_vs_random_p", "d_vs_random_p_adj", "d_vs_random_sig"])
    assert significance_columns(df) == {"d_vs_random": {"p": "d_vs_random_p_adj", "significant": "d_vs_random_sig"}}


def test_ranking_with_paired_comparisons_marks_the_difference_column():
    """Columns ``<score>_vs_<ref>``, ``_ci``, ``_p_adj``, ``_sig`` (paired comparisons): one cell per
    comparison with the difference, its interval, the corrected p-value and ``*``."""
    from xaipipe.report import table_html

    base = "aopc_accuracy_zero_vs_greedy_gn"
    rk = pd.DataFrame({"rank": [1, 2], "variant": ["rde_l1", "random"], "aopc_accuracy_zero": [0.6, 0.1],
                       base: [0.05, -0.45], f"{base}_ci": ["[0.010, 0.090]", "[-0.500, -0.400]"],
                       f"{base}_p_adj": [0.2, 0.001], f"{base}_sig": [float("nan"), "*"]})
    html = table_html(rk, significance=True)
    assert f"<th>{base} (p, *)</th>" in html and "_p_adj" not in html and "_sig" not in html
    cells = html.split("<tr")[2:]
    assert "0.05 <small>[0.010, 0.090]</small> <small>p 0.2</small></td>" in cells[0] and "sig" not in cells[0]
    assert "-0.45 <small>[-0.500, -0.400]</small> <small>p 0.001</small> <b class='sig'>*</b>" in cells[1]


@pytest.mark.skipif(__import__("xaipipe.browser", fromlist=["x"]).find_chromium() is None,
                    reason="no Chromium on this machine (apt-get install chromium)")
def test_index_and_comparison_page_in_chromium(tmp_path):
    """From file://, as a person opens it: no console errors, every link resolves, one click shows a report
    table, the comparison link opens a working page."""
    import json
    from urllib.parse import unquote, urlparse

    from xaipipe.browser import Chromium

    res = _results_tree(tmp_path)
    with Chromium() as b:
        tab = b.page(1200, 900)
        tab.goto(res / "index.html")
        urls = tab.eval("[...document.querySelectorAll('a[href],img[src]')].map(e => e.href || e.src)"
                        ".filter(u => !u.startsWith(location.href.split('#')[0] + '#'))")
        missing = [u for u in urls if not Path(unquote(urlparse(u).path)).exists()]
        assert urls and missing == []
        assert tab.eval("!document.querySelector('#table-rnn_table4_5 table').checkVisibility()")  # closed
        tab.eval("document.querySelector('#table-rnn_table4_5 summary').click()")
        assert tab.eval("document.querySelector('#table-rnn_table4_5 table').checkVisibility()")  # one click
        href = tab.eval("[...document.querySelectorAll('a')].find(a => a.textContent.includes('Compare the methods')).href")
        tab.goto(href)
        tab.wait_for("window.xaiCompare && xaiCompare.ready")
        assert tab.eval("xaiCompare.shown") == "doc0000"
        back = tab.eval("[...document.querySelectorAll('header a')].map(a => a.href)")
        assert back and all(Path(unquote(urlparse(u).path)).exists() for u in back), back
        assert tab.problems == [], json.dumps(tab.problems)


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
