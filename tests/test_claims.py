"""The report's claims judged from per-document curves (xaipipe.evaluate.claims): every rule on synthetic
curves built to support it, to contradict it, and with what it needs missing."""

import numpy as np
import pandas as pd
import pytest

from xaipipe.evaluate.claims import CLAIMS, claims_summary, claims_table, judge

K = 4
N = 30
VARIANTS = {"greedy_gn": "greedy", "greedy_softmax": "greedy", "greedy_gl2": "greedy", "greedy_gl4": "greedy",
            "rde_l2_adaptive": "rde", "rde_l2_adaptive_05_15": "rde", "rde_l2_fixed": "rde", "rde_l1": "rde",
            "lrp_epsilon": "lrp_epsilon", "occlusion": "occlusion", "lime": "lime", "random": "random"}
NAMES = [c.claim for c in CLAIMS]


def curves(a, start=1.0):
    """Per-document curves [start, start (1 - a'), ...] whose AOPC is ``start * a`` (a' = a (K+1)/K)."""
    a = np.clip(np.asarray(a, float), 0, 0.79) * (K + 1) / K
    return [[start] + [start * (1 - x)] * K for x in a]


def build(acc, dist, gaussian=lambda a: 0.5 * a, neutral=lambda a: a, drop=(), drop_keys=(), seed=0):
    """per_doc frames: ``acc[v]``/``dist[v]``: mean per-document AOPC of the accuracy / distortion curves;
    the gaussian and neutral accuracy curves derive from the zero-mode ones; 2 misclassified documents
    (NaN accuracy)."""
    rng = np.random.default_rng(seed)
    out = {}
    for v in VARIANTS:
        if v in drop:
            continue
        a = acc[v] + rng.normal(0, 0.02, N)
        df = pd.DataFrame({"id": [f"d{i}" for i in range(N + 2)]})
        nan = [[np.nan] * (K + 1)] * 2
        df["accuracy/zero"] = curves(a) + nan
        df["accuracy/gaussian"] = curves(gaussian(a)) + nan
        df["accuracy/neutral"] = curves(neutral(a)) + nan
        d = dist[v] + rng.normal(0, 0.02, N)
        df["distortion/l1"] = curves(d, start=2.0) + nan
        df["distortion/l2"] = curves(d, start=3.0) + nan
        out[v] = df.drop(columns=[k for k in drop_keys if k in df.columns])
    return out


SUPPORT_ACC = {"greedy_gn": 0.75, "greedy_softmax": 0.7, "greedy_gl2": 0.5, "greedy_gl4": 0.45,
               "rde_l2_adaptive": 0.25, "rde_l2_adaptive_05_15": 0.3, "rde_l2_fixed": 0.15, "rde_l1": 0.25,
               "lrp_epsilon": 0.4, "occlusion": 0.45, "lime": 0.5, "random": 0.05}
SUPPORT_DIST = {v: 0.3 for v in VARIANTS} | {"rde_l2_adaptive": 0.6, "rde_l1": 0.6}
CONTRA_ACC = {"greedy_gn": 0.2, "greedy_softmax": 0.7, "greedy_gl2": 0.5, "greedy_gl4": 0.45,
              "rde_l2_adaptive": 0.7, "rde_l2_adaptive_05_15": 0.6, "rde_l2_fixed": 0.75, "rde_l1": 0.7,
              "lrp_epsilon": 0.4, "occlusion": 0.45, "lime": 0.5, "random": 0.05}
CONTRA_DIST = {v: 0.5 for v in VARIANTS} | {"rde_l2_adaptive": 0.2, "rde_l1": 0.2}


def verdicts(per_doc, **kw):
    t = claims_table(per_doc, VARIANTS, n_boot=200, **kw)
    assert list(t["claim"]) == NAMES
    return dict(zip(t["claim"], t["verdict"])), t


def test_every_claim_supported_on_curves_built_to_support_it():
    v, t = verdicts(build(SUPPORT_ACC, SUPPORT_DIST))
    assert set(v.values()) == {"supported"}, v
    assert (t["significant"] == "yes").all() and (t["p_adj"] < 0.05).all()
    greedy = t.iloc[0]
    assert greedy["n_comparisons"] == 2 * 7  # 7 non-greedy, non-random variants x (zero, neutral)
    assert "14 of 14 comparisons significantly as claimed" in greedy["measured"]
    assert greedy["figures"] == "figures/accuracy_neutral.png, figures/accuracy_zero.png"
    assert t.iloc[3]["figures"] == "figures/distortion_l2.png"
    # "the other methods" of the RDE claims: LRP, occlusion, LIME -- not RDE, greedy or random
    assert t.iloc[3]["measured"].startswith("rde_l2_adaptive − mean of 3 comparison methods, distortion/l2: +0.")


def test_every_claim_contradicted_on_curves_built_against_it():
    # neutral words far from the zero vector, Gaussian noise identical to it
    v, t = verdicts(build(CONTRA_ACC, CONTRA_DIST, gaussian=lambda a: a, neutral=lambda a: 0.3 * a))
    assert set(v.values()) == {"contradicted"}, v
    assert (t["significant"] == "yes").all()


def test_identical_curves_are_inconclusive():
    flat = {v: 0.4 for v in VARIANTS}
    per_doc = build(flat, {v: 0.3 for v in VARIANTS}, gaussian=lambda a: a, neutral=lambda a: a)
    base = per_doc["lime"]
    for v in per_doc:  # the very same curves for every variant: every difference is exactly 0
        per_doc[v] = base.copy()
    v, t = verdicts(per_doc)
    assert set(v.values()) == {"inconclusive"}, v
    assert (t["significant"] == "no").all() and (t["p_adj"] == 1).all()


def test_claims_without_their_variants_or_curves_are_not_measured():
    per_doc = build(SUPPORT_ACC, SUPPORT_DIST, drop=("greedy_gl2", "rde_l2_fixed", "rde_l1"),
                    drop_keys=("accuracy/gaussian", "distortion/l2"))
    v, t = verdicts(per_doc)
    assert v == {
        NAMES[0]: "supported",  # greedy GN vs the others: zero and neutral are there
        NAMES[1]: "not measured",  # greedy_gl2 missing
        NAMES[2]: "supported",
        NAMES[3]: "not measured",  # distortion/l2 missing
        NAMES[4]: "not measured",  # accuracy/gaussian missing
        NAMES[5]: "not measured",  # rde_l1 missing
        NAMES[6]: "not measured",
        NAMES[7]: "not measured",  # gaussian mode missing
        NAMES[8]: "not measured",  # rde_l2_fixed missing
    }, v
    nm = t[t["verdict"] == "not measured"].set_index("claim")
    assert nm.at[NAMES[1], "measured"] == "variant greedy_gl2 not configured"
    assert nm.at[NAMES[3], "measured"] == "curve distortion/l2 not evaluated"
    assert (nm["n_comparisons"] == 0).all() and nm["p_adj"].isna().all()
    # no comparison methods (LRP, gradients, ...): the RDE claims cannot be judged
    only = {k: per_doc[k] for k in ("greedy_gn", "rde_l2_adaptive", "random")}
    v, _ = verdicts(only)
    assert v[NAMES[4]] == "not measured" and v[NAMES[0]] == "supported"


def test_greedy_best_is_contradicted_by_one_significantly_better_method():
    acc = dict(SUPPORT_ACC, lime=0.9)  # one comparison method beats greedy GN
    v, t = verdicts(build(acc, SUPPORT_DIST))
    assert v[NAMES[0]] == "contradicted" and "lime" in t.iloc[0]["measured"]
    acc = dict(SUPPORT_ACC, lime=SUPPORT_ACC["greedy_gn"])  # level with greedy GN: not every one beaten
    v, _ = verdicts(build(acc, SUPPORT_DIST))
    assert v[NAMES[0]] == "inconclusive"


def test_one_good_adaptive_interval_is_enough():
    acc = dict(SUPPORT_ACC, rde_l2_adaptive=0.05, rde_l2_adaptive_05_15=0.3, rde_l2_fixed=0.15)
    v, t = verdicts(build(acc, SUPPORT_DIST))
    assert v[NAMES[8]] == "supported" and "rde_l2_adaptive_05_15 − rde_l2_fixed" in t.iloc[8]["measured"]


def test_judge_rules():
    def tests(diffs, sig):
        return pd.DataFrame({"diff": diffs, "p_adj": [0.01 if s else 0.5 for s in sig], "significant": sig})
    assert judge(tests([0.1, 0.2], [True, True]), "all")[0] == "supported"
    assert judge(tests([0.1, 0.2], [True, False]), "all")[0] == "inconclusive"
    assert judge(tests([0.1, -0.2], [True, True]), "all")[0] == "contradicted"
    assert judge(tests([0.1, -0.2], [False, True]), "any")[0] == "inconclusive"
    assert judge(tests([0.1, -0.2], [True, True]), "any")[0] == "supported"
    assert judge(tests([-0.1, -0.2], [True, True]), "any")[0] == "contradicted"
    assert judge(tests([-0.1, -0.2], [True, False]), "any")[0] == "inconclusive"
    verdict, decisive = judge(tests([0.3, 0.1], [True, True]), "all")
    assert verdict == "supported" and decisive["diff"] in (0.3, 0.1)


def test_claims_summary_across_datasets(tmp_path):
    t = claims_table(build(SUPPORT_ACC, SUPPORT_DIST), VARIANTS, n_boot=50)
    for d in ("ng20", "planted"):
        t.to_csv(tmp_path / f"{d}.csv", index=False)
    s = claims_summary([{"dataset": d, "model": "teacher", "path": tmp_path / f"{d}.csv"} for d in ("ng20", "planted")])
    assert list(s.columns[:3]) == ["dataset", "model", "claim"] and "published_claim" in s.columns
    assert len(s) == 2 * len(CLAIMS) and list(s["dataset"].unique()) == ["ng20", "planted"]
    assert set(s["significant"]) == {"yes"}
