"""The main report's qualitative claims on explanation methods, judged on this run's curves (issue #17,
item 4).

Every claim is turned into paired comparisons over the same documents (:mod:`.compare`): per document a
difference of scores (the AOPC of a curve, see :func:`~xaipipe.evaluate.compare.per_doc_scores`) oriented
so that **positive means "as the report says"**. All comparisons of one ``(dataset, model)`` form one family:
bootstrap interval of the mean difference, sign-flip permutation p-value, Holm correction over the family
(the claims table's own family, apart from ``ranking.csv``'s). Then, per claim:

* ``all`` claims (every comparison must hold, e.g. "greedy beats every other method"):
  **supported** when every comparison is significantly positive (Holm-adjusted p < alpha),
  **contradicted** when at least one is significantly negative, otherwise **inconclusive**;
* ``any`` claims (one configuration suffices, "a good adaptive interval helps"): **supported** when at
  least one comparison is significantly positive, **contradicted** when every one is significantly
  negative, otherwise **inconclusive**;
* **not measured** when a variant, replacement mode or curve the rule needs is not configured.

"The other methods" of the RDE claims (report 6.1, 6.2 compare RDE with LRP and the gradient maps) are the
*comparison methods*: every configured variant that is neither RDE, greedy nor the random order (LRP,
gradients, integrated gradients, occlusion, LIME, SHAP); RDE is compared with their per-document mean (one
comparison: "better than the other methods on average", no selection of a best competitor). Variants are
found by the names of ``config.yaml`` (:data:`ROLES`); a config that names them differently gets
"not measured".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .compare import paired_tests, per_doc_scores

#: the variant names the claims use (config.yaml's names); adaptive = every variant starting with the prefix
ROLES = {"gn": "greedy_gn", "gl2": "greedy_gl2", "gl4": "greedy_gl4", "rde_l2": "rde_l2_adaptive",
         "rde_l1": "rde_l1", "fixed": "rde_l2_fixed", "adaptive_prefix": "rde_l2_adaptive"}
RANDOM = "random"
COLUMNS = ["claim", "section", "published_claim", "rule", "figures", "measured", "verdict", "significant",
           "p_adj", "n_comparisons"]


@dataclass
class Test:
    label: str  # what is compared, e.g. "greedy_gn − shap, accuracy/zero"
    d: np.ndarray  # per-document differences, positive = as the report claims
    figure: str  # the figure of this run showing it (file name under figures/)


class NotMeasured(Exception):
    """A variant, mode or curve the claim needs is not in this run."""


@dataclass
class Data:
    per_doc: dict[str, pd.DataFrame]
    variants: dict[str, str]  # variant -> registered method ("random" for the baseline)
    _cache: dict = field(default_factory=dict)

    def score(self, variant: str, key: str) -> np.ndarray:
        if variant not in self.per_doc:
            raise NotMeasured(f"variant {variant} not configured")
        if key not in self.per_doc[variant].columns:
            raise NotMeasured(f"curve {key} not evaluated")
        if (variant, key) not in self._cache:
            self._cache[variant, key] = per_doc_scores(self.per_doc[variant], key)
        return self._cache[variant, key]

    def curves(self, variant: str, key: str) -> np.ndarray:
        """``(n_docs, K + 1)`` per-document curve (NaN rows outside the set)."""
        if variant not in self.per_doc:
            raise NotMeasured(f"variant {variant} not configured")
        if key not in self.per_doc[variant].columns:
            raise NotMeasured(f"curve {key} not evaluated")
        return np.vstack([np.asarray(r, dtype=np.float64) for r in self.per_doc[variant][key]])

    def family(self, name: str) -> list[str]:
        """``greedy``, ``rde`` or ``comparison`` (neither RDE, greedy nor random) variants present."""
        out = []
        for v in self.per_doc:
            m = self.variants.get(v, v)
            if v == RANDOM or m == RANDOM:
                continue
            fam = m if m in ("greedy", "rde") else "comparison"
            if fam == name:
                out.append(v)
        return out

    def mean_of(self, variants: list[str], key: str) -> np.ndarray:
        if not variants:
            raise NotMeasured("no comparison method (LRP, gradients, occlusion, LIME, SHAP) configured")
        return np.mean([self.score(v, key) for v in variants], axis=0)


def _fig(key: str) -> str:
    return key.replace("/", "_") + ".png"


def _vs_each(a: str, others_of: Callable[[Data], list[str]], keys: tuple[str, ...]):
    def tests(data: Data) -> list[Test]:
        others = others_of(data)
        if not others:
            raise NotMeasured("no variant to compare with")
        out = []
        for key in keys:
            sa = data.score(a, key)
            out += [Test(f"{a} − {b}, {key}", sa - data.score(b, key), _fig(key)) for b in others]
        return out
    return tests


def _vs_mean(a: str, keys: tuple[str, ...], better: bool):
    def tests(data: Data) -> list[Test]:
        others = data.family("comparison")
        out = []
        for key in keys:
            diff = data.score(a, key) - data.mean_of(others, key)
            label = (f"{a} − mean of {len(others)} comparison methods, {key}" if better else
                     f"mean of {len(others)} comparison methods − {a}, {key}")
            out.append(Test(label, diff if better else -diff, _fig(key)))
        return out
    return tests


def _modes_closeness(data: Data) -> list[Test]:
    """Per document: mean over variants and k of |acc_gaussian - acc_zero| minus the same for neutral."""
    names = [v for v in data.per_doc]
    gaps = []
    for v in names:
        z = data.curves(v, "accuracy/zero")
        g = np.abs(data.curves(v, "accuracy/gaussian") - z).mean(axis=1)
        n = np.abs(data.curves(v, "accuracy/neutral") - z).mean(axis=1)
        gaps.append(g - n)
    return [Test(f"|gaussian − zero| − |neutral − zero| of the accuracy curves, mean over {len(names)} variants",
                 np.mean(gaps, axis=0), "accuracy_neutral.png")]


def _adaptive(data: Data) -> list[Test]:
    fixed = ROLES["fixed"]
    adaptive = [v for v in data.per_doc if v.startswith(ROLES["adaptive_prefix"])]
    if not adaptive:
        raise NotMeasured(f"no adaptive-λ variant ({ROLES['adaptive_prefix']}*) configured")
    key = "accuracy/neutral"
    sf = data.score(fixed, key)
    return [Test(f"{v} − {fixed}, {key}", data.score(v, key) - sf, _fig(key)) for v in adaptive]


@dataclass
class Claim:
    claim: str
    section: str
    quote: str
    rule: str
    tests: Callable[[Data], list[Test]]
    semantics: str = "all"  # or "any"


GN, GL2, GL4, L2, L1 = ROLES["gn"], ROLES["gl2"], ROLES["gl4"], ROLES["rde_l2"], ROLES["rde_l1"]
ACC = ("accuracy/zero", "accuracy/neutral")

CLAIMS: list[Claim] = [
    Claim("Greedy GN has the best accuracy curves",
          "6.5.1 (Figure 19), 6.5.2 (Figures 24, 25)",
          "The accuracy curves are much better for the vanilla greedy method as compared to all the other "
          "methods so far!",
          f"AOPC of the accuracy curves (zero, neutral): {GN} − v > 0 for every variant v that is neither greedy "
          "nor random (all comparisons)",
          _vs_each(GN, lambda d: [v for v in d.per_doc if v != RANDOM and v not in d.family("greedy")], ACC)),
    Claim("GL2 (greedy on RDE-L2 candidates) is worse than GN",
          "6.5.1 (Figures 19, 21)",
          "In order to understand why the combined greedy methods don't do so well, we tried so do a few more "
          "experiment in this topic.",
          f"AOPC of the accuracy curves (zero, neutral): {GN} − {GL2} > 0 (all comparisons)",
          _vs_each(GN, lambda d: [GL2], ACC)),
    Claim("GL4 (greedy on RDE-L4 candidates) is worse than GN",
          "6.5.1 (Figures 19, 21)",
          "In order to understand why the combined greedy methods don't do so well, we tried so do a few more "
          "experiment in this topic.",
          f"AOPC of the accuracy curves (zero, neutral): {GN} − {GL4} > 0 (all comparisons)",
          _vs_each(GN, lambda d: [GL4], ACC)),
    Claim("RDE-L2 is better on the distortion curve",
          "6.2 (Figure 8)",
          "The RDE L2 loss based method does better on distortion curve, like the previous experiment",
          f"AOPC of the distortion curve in L2 form: {L2} − mean of the comparison methods > 0",
          _vs_mean(L2, ("distortion/l2",), better=True)),
    Claim("RDE-L2 is worse on accuracy (Gaussian noise and zero vector)",
          "6.2 (Figures 8, 9)",
          "but is actually worse off in both 'batched noise accuracy' and 'zero vector accuracy'.",
          f"AOPC of the accuracy curves (gaussian, zero): mean of the comparison methods − {L2} > 0 (all)",
          _vs_mean(L2, ("accuracy/gaussian", "accuracy/zero"), better=False)),
    Claim("RDE-L1 is better on the distortion curve",
          "6.1 (Figure 5a)",
          "The RDE L1 loss based method does seem to do better in distortion curve (maybe because it is "
          "optimized on that criteria itself)",
          f"AOPC of the distortion curve in L1 form: {L1} − mean of the comparison methods > 0",
          _vs_mean(L1, ("distortion/l1",), better=True)),
    Claim("RDE-L1 is not competitive in zero-vector accuracy",
          "6.1 (Figure 6)",
          "However, it is actually not competitive in the zero vector accuracy graph.",
          f"AOPC of the accuracy curve (zero): mean of the comparison methods − {L1} > 0",
          _vs_mean(L1, ("accuracy/zero",), better=False)),
    Claim("Neutral words (prepositions) give curves close to the zero vector, Gaussian noise does not",
          "6.5.1 (note to Figure 19)",
          "It seems like the batched version with prepositions is closer to the zero vector version than the "
          "batched version with random noise.",
          "per document, mean over k and every variant of |acc_gaussian − acc_zero| − |acc_neutral − acc_zero| "
          "> 0 (accuracy curves)",
          _modes_closeness),
    Claim("A good interval for the adaptive λ helps (L2-Adaptive vs L2-Fixed)",
          "6.5.1 (Figure 21)",
          "Based on the experiment, it seems a good interval for the adaptive λ method can lead good results",
          f"AOPC of the accuracy curve (neutral): v − {ROLES['fixed']} > 0 for at least one adaptive variant v "
          f"({ROLES['adaptive_prefix']}*) (any comparison)",
          _adaptive, semantics="any"),
]


def _fmt(t: pd.Series) -> str:
    return (f"{t['label']}: {t['diff']:+.3f} [{t['lo']:+.3f}, {t['hi']:+.3f}], p_adj {t['p_adj']:.3g}"
            f"{'*' if t['significant'] else ''} ({int(t['n_docs'])} docs)")


def judge(tests: pd.DataFrame, semantics: str) -> tuple[str, pd.Series]:
    """Verdict of one claim from its tests (``diff``, ``p_adj``, ``significant`` columns, positive = as
    claimed) and the test that decides it (the weakest one for a supported ``all`` claim, the strongest
    counter-example for a contradicted one, ...)."""
    pos = tests["significant"] & (tests["diff"] > 0)
    neg = tests["significant"] & (tests["diff"] < 0)
    if semantics == "all":
        if pos.all():  # the weakest comparison: largest adjusted p, then smallest difference
            weakest = tests.sort_values(["p_adj", "diff"], ascending=[False, True], kind="stable")
            return "supported", weakest.iloc[0]
        if neg.any():
            return "contradicted", tests[neg].loc[tests[neg]["diff"].idxmin()]
        rest = tests[~pos]
        return "inconclusive", rest.loc[rest["diff"].idxmin()]
    if semantics == "any":
        if pos.any():
            return "supported", tests[pos].loc[tests[pos]["p_adj"].idxmin()]
        if neg.all():
            return "contradicted", tests.loc[tests["diff"].idxmax()]
        return "inconclusive", tests.loc[tests["diff"].idxmax()]
    raise ValueError(f"unknown semantics {semantics!r}")


def claims_table(per_doc: dict[str, pd.DataFrame], variants: dict[str, str], figures_dir: str = "figures",
                 n_boot: int = 1000, n_perm: int | None = None, seed: int = 0, alpha: float = 0.05,
                 claims: list[Claim] | None = None) -> pd.DataFrame:
    """One row per claim (:data:`CLAIMS`), columns :data:`COLUMNS`: the claim, the report's section and
    words (``published_claim``), the rule, this run's figures, the measured differences, the verdict,
    whether it is significant and the deciding Holm-adjusted p-value."""
    data = Data(per_doc, variants)
    claims = CLAIMS if claims is None else claims
    collected: list[tuple[Claim, list[Test] | str]] = []
    for c in claims:
        try:
            tests = c.tests(data)
            if not tests:
                raise NotMeasured("nothing to compare")
            collected.append((c, tests))
        except NotMeasured as e:
            collected.append((c, str(e)))
    all_tests = [t for _, ts in collected if not isinstance(ts, str) for t in ts]
    if all_tests:
        stats = paired_tests(np.column_stack([t.d for t in all_tests]), n_boot=n_boot, n_perm=n_perm, seed=seed,
                             alpha=alpha)
        stats.insert(0, "label", [t.label for t in all_tests])
    rows, j = [], 0
    for c, ts in collected:
        row = {"claim": c.claim, "section": c.section, "published_claim": c.quote, "rule": c.rule}
        if isinstance(ts, str):
            row.update(figures="", measured=ts, verdict="not measured", significant="", p_adj=np.nan,
                       n_comparisons=0)
        else:
            st = stats.iloc[j:j + len(ts)].reset_index(drop=True)
            j += len(ts)
            verdict, decisive = judge(st, c.semantics)
            figs = sorted({f"{figures_dir}/{t.figure}" for t in ts})
            if len(st) <= 3:
                measured = "; ".join(_fmt(r) for _, r in st.iterrows())
            else:
                n_pos = int((st["significant"] & (st["diff"] > 0)).sum())
                n_neg = int((st["significant"] & (st["diff"] < 0)).sum())
                measured = (f"{n_pos} of {len(st)} comparisons significantly as claimed, {n_neg} significantly "
                            f"opposite; deciding: {_fmt(decisive)}")
            row.update(figures=", ".join(figs), measured=measured, verdict=verdict,
                       significant="yes" if verdict in ("supported", "contradicted") else "no",
                       p_adj=float(f"{decisive['p_adj']:.3g}"), n_comparisons=len(st))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


#: columns of the summary across datasets (the rules are in each claims.csv and in the README)
SUMMARY_COLUMNS = ["dataset", "model", "claim", "section", "published_claim", "verdict", "significant", "p_adj",
                   "measured", "figures"]


def claims_summary(sources: list[dict]) -> pd.DataFrame:
    """The claims of every explained ``(dataset, model)`` in one table (``sources``: ``{"dataset", "model",
    "path"}`` of each ``claims.csv``), columns :data:`SUMMARY_COLUMNS`, the claims in their order per model."""
    frames = []
    for s in sources:
        df = pd.read_csv(s["path"], keep_default_na=False, na_values=[""])
        df.insert(0, "model", s["model"])
        df.insert(0, "dataset", s["dataset"])
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[SUMMARY_COLUMNS]
