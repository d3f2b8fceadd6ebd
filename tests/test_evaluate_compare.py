"""Paired comparisons of explanation methods (xaipipe.evaluate.compare): sign-flip p-values against hand
values and scipy's permutation test, Holm against hand-computed adjustments, the shared bootstrap
resample, and the ranking tables built from them."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xaipipe.evaluate.compare import (compare_to_references, holm, needed_permutations, paired_bootstrap,
                                      paired_tests, per_doc_scores, ranking_comparisons, sign_flip_pvalues)
from xaipipe.evaluate.plots import distortion_table, ranking_markdown, ranking_table


def test_sign_flip_exact_hand_values():
    # T = 6; the 8 sign vectors give sums ±6, ±4, ±2, 0, 0: |T*| >= 6 twice
    assert sign_flip_pvalues(np.array([1.0, 2.0, 3.0]), n_perm=100)[0] == pytest.approx(0.25)
    assert sign_flip_pvalues(np.array([1.0, -1.0]), n_perm=100)[0] == 1.0  # T = 0
    # n = 4 documents all in one direction: the smallest possible p is 2 / 16
    assert sign_flip_pvalues(np.ones(4), n_perm=100)[0] == pytest.approx(0.125)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sign_flip_exact_equals_scipy_permutation_test(seed):
    rng = np.random.default_rng(seed)
    d = rng.normal(0.4, 1.0, size=11)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided").pvalue
    # a NaN document (not in the comparison's set) is left out
    ours = sign_flip_pvalues(np.column_stack([d, np.append(d[:-1], np.nan)]), n_perm=4096)
    assert ours[0] == pytest.approx(ref, abs=1e-12)
    ref2 = stats.permutation_test((d[:-1],), np.mean, permutation_type="samples", n_resamples=np.inf,
                                  alternative="two-sided").pvalue
    assert ours[1] == pytest.approx(ref2, abs=1e-12)


def test_sign_flip_monte_carlo_close_to_exact_and_never_zero():
    rng = np.random.default_rng(5)
    d = rng.normal(0.5, 1.0, size=14)
    exact = sign_flip_pvalues(d, n_perm=2 ** 14)[0]
    mc = sign_flip_pvalues(d, n_perm=4000, seed=3)[0]  # 2**14 > 4000: Monte Carlo
    assert abs(mc - exact) < 4 * np.sqrt(exact * (1 - exact) / 4000) + 1e-3
    big = np.full(40, 1.0)  # every flip is smaller than the observed sum but the identity
    assert sign_flip_pvalues(big, n_perm=999)[0] == pytest.approx(1 / 1000)


def test_holm_hand_values():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.01, 0.02, 0.03, 0.04, 0.05]), [0.05, 0.08, 0.09, 0.09, 0.09])
    out = holm([0.5, np.nan, 0.01])  # NaN does not count in m
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.5) and out[2] == pytest.approx(0.02)
    np.testing.assert_allclose(holm([0.9, 0.8]), [1.0, 1.0])  # 2 x 0.8 capped at 1, then the running max
    np.testing.assert_allclose(holm([0.01, 0.9]), [0.02, 0.9])


def test_holm_equals_the_step_down_procedure():
    """Reference: Holm rejects H(1..j) while p(i) <= alpha / (m - i + 1); the adjusted p is the smallest
    alpha at which a hypothesis is rejected."""
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=12)
    adj = holm(p)
    for alpha in np.linspace(0.001, 0.3, 200):
        reject = np.zeros(len(p), bool)
        for i, j in enumerate(np.argsort(p)):
            if p[j] > alpha / (len(p) - i):
                break
            reject[j] = True
        np.testing.assert_array_equal(reject, adj <= alpha)


def test_paired_bootstrap_resamples_documents_once_for_both_variants():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.6, 0.2, 25), rng.normal(0.5, 0.2, 25)
    mean, lo, hi, n = paired_bootstrap(a - b, n_boot=500, seed=7)
    idx = np.random.default_rng(7).integers(0, 25, size=(500, 25))  # the same index matrix, applied to a and b
    boot = a[idx].mean(1) - b[idx].mean(1)
    assert mean[0] == pytest.approx((a - b).mean()) and n[0] == 25
    assert lo[0] == pytest.approx(np.quantile(boot, 0.025)) and hi[0] == pytest.approx(np.quantile(boot, 0.975))


def curve_frame(aopcs, K=4, ids=None, extra_nan=0):
    """per_doc columns whose per-document AOPC is ``aopcs``: curves [1, 1-a', ..., 1-a'] with
    a' = a (K + 1) / K, plus ``extra_nan`` documents outside the set."""
    a = np.asarray(aopcs, float) * (K + 1) / K
    rows = [[1.0] + [1.0 - x] * K for x in a] + [[np.nan] * (K + 1)] * extra_nan
    return rows


def per_doc_set(scores: dict[str, dict[str, np.ndarray]], extra_nan=2):
    out = {}
    n = len(next(iter(next(iter(scores.values())).values())))
    ids = [f"d{i}" for i in range(n + extra_nan)]
    for v, keys in scores.items():
        df = pd.DataFrame({"id": ids})
        for key, s in keys.items():
            df[key] = curve_frame(s, extra_nan=extra_nan)
        out[v] = df
    return out


def test_per_doc_scores_are_aopc_and_gain_for_rising_curves():
    df = pd.DataFrame({"id": ["a", "b", "c"], "accuracy/zero": [[1, 0, 0], [1, 1, 0], [np.nan] * 3],
                       "misclassified_changed/zero": [[0, 1, 1], [0, 0, 1], [np.nan] * 3]})
    np.testing.assert_allclose(per_doc_scores(df, "accuracy/zero")[:2], [2 / 3, 1 / 3])
    assert np.isnan(per_doc_scores(df, "accuracy/zero")[2])
    np.testing.assert_allclose(per_doc_scores(df, "misclassified_changed/zero")[:2], [2 / 3, 1 / 3])


def test_identical_variants_are_never_significant_and_a_clearly_better_one_is():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, 30)
    keys = ("accuracy/zero", "accuracy/neutral")
    per_doc = per_doc_set({
        "greedy_gn": {k: base + 0.3 for k in keys},
        "twin_a": {k: base for k in keys},
        "twin_b": {k: base.copy() for k in keys},
        "random": {k: base * 0.1 for k in keys},
    })
    t = compare_to_references(per_doc, ["twin_a", "greedy_gn", "random"], keys, n_boot=200)
    twins = t[(t["variant"] == "twin_b") & (t["reference"] == "twin_a")]
    assert len(twins) == 2 and (twins["diff"] == 0).all() and (twins["p"] == 1).all()
    assert not twins["significant"].any() and (twins["lo"] == 0).all() and (twins["hi"] == 0).all()
    better = t[(t["variant"] == "greedy_gn") & (t["reference"] == "twin_a")]
    assert (better["diff"] > 0.29).all() and better["significant"].all() and (better["lo"] > 0).all()
    worse = t[(t["variant"] == "random") & (t["reference"] == "greedy_gn")]
    assert (worse["diff"] < 0).all() and worse["significant"].all()
    assert (t["n_docs"] == 30).all()  # the 2 documents outside the set are left out
    assert not ((t["variant"] == t["reference"]).any())


def test_four_documents_are_never_significant():
    per_doc = per_doc_set({"greedy_gn": {"accuracy/zero": np.full(4, 0.9)},
                           "random": {"accuracy/zero": np.full(4, 0.1)}}, extra_nan=0)
    t = compare_to_references(per_doc, ["random"], ["accuracy/zero"], n_boot=100)
    assert t["p"].iloc[0] == pytest.approx(0.125) and not t["significant"].iloc[0]


def test_reference_missing_from_the_config_is_skipped_and_documents_must_match():
    per_doc = per_doc_set({"lime": {"accuracy/zero": np.full(6, 0.5)},
                           "random": {"accuracy/zero": np.full(6, 0.1)}})
    t = compare_to_references(per_doc, ["greedy_gn", "random"], ["accuracy/zero"], n_boot=50)
    assert set(t["reference"]) == {"random"} and list(t["variant"]) == ["lime"]
    per_doc["lime"]["id"] = per_doc["lime"]["id"][::-1].to_numpy()
    with pytest.raises(ValueError, match="other documents"):
        compare_to_references(per_doc, ["random"], ["accuracy/zero"])


def test_permutations_suffice_for_the_holm_threshold():
    assert needed_permutations(4, 0.05) == 10000
    m = 500
    n = needed_permutations(m, 0.05)
    assert 1 / (n + 1) < 0.05 / m / 5
    rng = np.random.default_rng(0)
    d = np.column_stack([rng.normal(0.5, 0.1, 60)] + [rng.normal(0, 1, 60) for _ in range(m - 1)])
    t = paired_tests(d, n_boot=50)  # a clear difference survives Holm over 500 comparisons
    assert t["significant"].iloc[0] and t["p_adj"].iloc[0] < 0.05


def summaries_from(per_doc):
    out = {}
    for v, df in per_doc.items():
        curves = {}
        for key in df.columns[1:]:
            s = per_doc_scores(df, key)
            s = s[np.isfinite(s)]
            sign = -1 if key.startswith("misclassified") else 1
            curves[key] = {"aopc": sign * s.mean(), "aopc_lo": sign * s.mean() - 0.01,
                           "aopc_hi": sign * s.mean() + 0.01, "at_k": {}}
        out[v] = {"curves": curves}
    return out


def test_ranking_and_distortion_tables_with_comparisons():
    rng = np.random.default_rng(2)
    keys = ("accuracy/zero", "distortion/l2")
    strength = {"greedy_gn": (0.9, 0.3), "rde_l2": (0.4, 0.9), "lime": (0.6, 0.5), "random": (0.1, 0.1)}
    per_doc = per_doc_set({v: {k: s + rng.normal(0, 0.02, 20) for k, s in zip(keys, st)}
                           for v, st in strength.items()})
    summaries = summaries_from(per_doc)
    variants = {"greedy_gn": "greedy", "rde_l2": "rde", "lime": "lime", "random": "random"}
    dele = compare_to_references(per_doc, ["greedy_gn", "random"], ["accuracy/zero"], n_boot=100)
    dist = compare_to_references(per_doc, ["greedy_gn", "random"], ["distortion/l2"], n_boot=100)
    table = ranking_table(summaries, variants, dele)
    assert list(table["variant"]) == ["greedy_gn", "lime", "rde_l2", "random"]  # AOPC zero descending
    assert list(table["rank"]) == [1, 2, 3, 4]
    row = table.set_index("variant")
    assert row.at["lime", "aopc_accuracy_zero_vs_greedy_gn"] == pytest.approx(-0.3, abs=0.02)
    assert row.at["lime", "aopc_accuracy_zero_vs_greedy_gn_sig"] == "*"
    assert pd.isna(row.at["greedy_gn", "aopc_accuracy_zero_vs_greedy_gn"])  # no self-comparison
    assert not any(c.startswith("aopc_distortion") for c in table.columns)
    md = ranking_markdown(table)
    assert "aopc_accuracy_zero vs greedy_gn" in md and "*" in md and "Holm" in md
    dt = distortion_table(summaries, variants, dist, table)
    assert list(dt["variant"])[0] == "rde_l2" and dt.set_index("variant").at["rde_l2", "rank_accuracy_zero"] == 3
    assert dt.set_index("variant").at["rde_l2", "aopc_distortion_l2_vs_greedy_gn_sig"] == "*"
    assert not any("accuracy_zero_vs" in c for c in dt.columns)


def test_ranking_comparisons_are_two_families_corrected_apart():
    rng = np.random.default_rng(3)
    keys = ("accuracy/zero", "accuracy/neutral", "distortion/l1", "distortion/l2")
    per_doc = per_doc_set({v: {k: 0.5 + rng.normal(0, 0.1, 20) for k in keys}
                           for v in ("greedy_gn", "lime", "rde_l2", "random")})
    dele, dist = ranking_comparisons(per_doc, ["greedy_gn", "random", "absent"], n_boot=50, n_perm=2000)
    assert set(dele["table"]) == {"ranking"} and set(dist["table"]) == {"distortion_ranking"}
    assert set(dele["key"]) == {"accuracy/zero", "accuracy/neutral"} and set(dist["key"]) == {"distortion/l1",
                                                                                              "distortion/l2"}
    assert set(dele["reference"]) == {"greedy_gn", "random"}  # a reference not configured is skipped
    assert len(dele) == len(dist) == 2 * 2 * 3  # keys x references x other variants
    # Holm within each family: the same p-values as the family tested alone
    alone = compare_to_references(per_doc, ["greedy_gn", "random"], ["distortion/l1", "distortion/l2"], n_boot=50,
                                  n_perm=2000)
    np.testing.assert_allclose(dist["p_adj"].to_numpy(), alone["p_adj"].to_numpy())
