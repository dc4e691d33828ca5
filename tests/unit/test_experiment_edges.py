"""Experiment statistics at the edges (issue 12, section 3): degenerate arms, relative lift where it has no
meaning, control_value, incomplete summary files, planning for several variants, and which interval decides.

Every input the issue names is a test here, checked against an independent reference: scipy/statsmodels on the
same counts, numpy on unit-level values, or a simulation with a known truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from ml.experiments.analysis import analyze
from ml.experiments.decision import alpha_budget
from ml.experiments.frequentist import compare_means
from ml.experiments.moments import Moments, compare_moments
from ml.experiments.power import minimum_detectable_effect, sample_size_per_variant
from ml.experiments.stats import MeanStats
from ml.experiments.summary_csv import SummaryFileError, read_summary_csv

pytestmark = pytest.mark.unit


def _row(m: np.ndarray, d: np.ndarray | None = None, x: np.ndarray | None = None, xd: np.ndarray | None = None) -> dict:
    """A stats-table row computed the slow way, from unit-level values."""
    row: dict[str, Any] = {"n": len(m), "sum": m.sum(), "sum_squares": (m * m).sum()}
    if d is not None:
        row |= {"denominator_sum": d.sum(), "denominator_sum_squares": (d * d).sum(),
                "main_denominator_sum_product": (m * d).sum()}  # fmt: skip
    if x is not None:
        row |= {"covariate_sum": x.sum(), "covariate_sum_squares": (x * x).sum(),
                "main_covariate_sum_product": (m * x).sum()}  # fmt: skip
    if d is not None and x is not None and xd is not None:
        row |= {
            "covariate_denominator_sum": xd.sum(),
            "covariate_denominator_sum_squares": (xd * xd).sum(),
            "covariate_covariate_denominator_sum_product": (x * xd).sum(),
            "main_covariate_denominator_sum_product": (m * xd).sum(),
            "denominator_covariate_sum_product": (d * x).sum(),
            "denominator_covariate_denominator_sum_product": (d * xd).sum(),
        }
    return row


def _analyze(
    arms: dict[str, dict], planned: int | None = None, kind: str = "mean", higher_is_better: bool = True, **kw: Any
) -> pd.DataFrame:
    """analyze() on one experiment 'e' with one metric 'm'; the first arm is the control."""
    stats_rows = [{"experiment_id": "e", "metric": "m", "variant": v, "metric_kind": kind, "metric_role": "primary",
                   "higher_is_better": higher_is_better, **row} for v, row in arms.items()]  # fmt: skip
    variants = pd.DataFrame(
        {
            "experiment_id": "e",
            "variant": list(arms),
            "is_control": [i == 0 for i in range(len(arms))],
            "weight": 1 / len(arms),
            "planned_units_per_variant": planned,
        }
    )
    return analyze(pd.DataFrame(stats_rows), variants, **kw)


def _treated(results: pd.DataFrame) -> pd.Series:
    return results[~results["is_control"]].iloc[0]


def _csv(tmp_path: Path, text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = tmp_path / "summary.csv"
    path.write_text(text)
    return read_summary_csv(path)


# ---------------------------------------------------------------- degenerate arms


def test_issue_input_one_success_vs_none_is_not_worse(tmp_path: Path) -> None:
    """exp_tiny: 1 of 20 against 0 of 20, planned 1,000 per variant. It was `worse` with a relative interval of
    [-100%, -100%]; the pooled two-proportion z-test (statsmodels) gives p = 0.31 (Welch: 0.33)."""
    stats_frame, variants = _csv(
        tmp_path,
        "experiment,metric,variant,n,sum,sum_squares,planned_units_per_variant\n"
        "exp_tiny,conversion,control,20,1,1,1000\n"
        "exp_tiny,conversion,treatment,20,0,0,1000\n",
    )
    row = _treated(analyze(stats_frame, variants))
    assert row["decision"] == "keep_running"
    _, reference_p = proportions_ztest([0, 1], [20, 20])
    assert row["absolute_p"] == pytest.approx(reference_p, rel=1e-9)
    assert row["absolute_p"] == pytest.approx(0.311, abs=0.001)
    assert row["absolute_ci_low"] < 0 < row["absolute_ci_high"]
    assert row["decision_ci_low"] < 0 < row["decision_ci_high"]
    # 1 of 20 is not distinguishable from 0: no relative lift, and the reason is given.
    assert pd.isna(row["relative_lift"]) and pd.isna(row["relative_ci_low"])
    assert "Fieller" in row["relative_note"]
    assert "pooled (null) variance" in row["note"]
    # At its planned size the same counts are read once, at the fixed horizon: nothing detectable.
    final = _treated(analyze(stats_frame, variants.assign(planned_units_per_variant=20)))
    assert final["decision"] == "no_detectable_effect" and final["decision_basis"] == "fixed_horizon"


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        ((20, 0), (20, 20)),  # none against all: both arms degenerate
        ((20, 20), (20, 19)),  # all successes
        ((200, 0), (180, 7)),  # no success in the control
        ((50, 1), (60, 0)),
    ],
)
def test_proportions_with_a_degenerate_arm_equal_the_pooled_z_test_and_chi_square(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    """The kind: any arm with 0 or n successes. Reference: statsmodels' pooled z-test and scipy's Pearson
    chi-square without continuity correction (the same test squared)."""
    (n_c, s_c), (n_t, s_t) = control, treatment
    result = compare_means(MeanStats.of_proportion(n_c, s_c), MeanStats.of_proportion(n_t, s_t))
    _, z_p = proportions_ztest([s_t, s_c], [n_t, n_c])
    chi2 = stats.chi2_contingency([[s_c, n_c - s_c], [s_t, n_t - s_t]], correction=False)
    assert result.pooled_variance
    assert result.absolute_p == pytest.approx(z_p, rel=1e-9)
    assert result.absolute_p == pytest.approx(chi2.pvalue, rel=1e-9)
    assert result.absolute_ci[1] - result.absolute_ci[0] > 0.01  # never a zero-width interval


def test_none_against_all_is_significant_and_none_against_none_is_insufficient() -> None:
    stark = _treated(_analyze({"control": _row(np.zeros(20)), "treatment": _row(np.ones(20))}, planned=20))
    assert stark["decision"] == "better" and stark["absolute_p"] < 1e-9
    nothing = _treated(_analyze({"control": _row(np.zeros(20)), "treatment": _row(np.zeros(20))}, planned=20))
    assert nothing["decision"] == "insufficient_data" and "the metric is constant" in nothing["note"]


def test_a_mean_with_one_unique_value_in_an_arm_uses_the_pooled_variance() -> None:
    """Revenue of 5.0 for every control unit: the Welch standard error would be the treatment's alone. The
    reference is the z-test with the variance of both arms pooled around their common mean (numpy, ddof=0)."""
    rng = np.random.default_rng(3)
    control, treatment = np.full(40, 5.0), rng.exponential(5.5, 60)
    result = compare_means(_stats(control), _stats(treatment))
    pooled = np.concatenate([control, treatment]).var()
    se = np.sqrt(pooled * (1 / 40 + 1 / 60))
    z = (treatment.mean() - control.mean()) / se
    assert result.pooled_variance and result.df is None
    assert result.absolute_se == pytest.approx(se, rel=1e-9)
    assert result.absolute_p == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_cuped_removing_all_variance_gives_no_zero_width_interval() -> None:
    """The metric is an exact linear function of its covariate within each arm: CUPED's residuals have no variance
    at all. With a difference between the arms the pooled null variance of the adjusted values is used (reference:
    numpy on the adjusted unit values); with none, the comparison falls back to the unadjusted one."""
    rng = np.random.default_rng(4)
    x_c, x_t = rng.normal(10, 2, 300), rng.normal(10, 2, 320)
    shifted = compare_moments(Moments.from_row(_row(2 * x_c, x=x_c)), Moments.from_row(_row(2 * x_t + 0.3, x=x_t)))
    c = shifted.comparison
    assert shifted.adjusted and shifted.theta == pytest.approx(2.0, rel=1e-9)
    x_bar = np.concatenate([x_c, x_t]).mean()
    adjusted = [2 * x_c - 2 * (x_c.mean() - x_bar), 2 * x_t + 0.3 - 2 * (x_t.mean() - x_bar)]
    # The adjusted unit values are constant within each arm; pooled variance around the common mean:
    pooled = np.concatenate([np.full(300, adjusted[0].mean()), np.full(320, adjusted[1].mean())]).var()
    assert c.absolute == pytest.approx(0.3, rel=1e-6)
    assert c.pooled_variance and c.absolute_se == pytest.approx(np.sqrt(pooled * (1 / 300 + 1 / 320)), rel=1e-6)
    assert c.absolute_ci[1] - c.absolute_ci[0] > 0

    same = compare_moments(Moments.from_row(_row(2 * x_c, x=x_c)), Moments.from_row(_row(2 * x_t, x=x_t)))
    assert not same.adjusted and same.note is not None and "without adjustment" in same.note
    welch_se = np.sqrt((2 * x_c).var(ddof=1) / 300 + (2 * x_t).var(ddof=1) / 320)
    assert same.comparison.absolute_se == pytest.approx(welch_se, rel=1e-9)


def _stats(values: np.ndarray) -> MeanStats:
    return MeanStats(n=len(values), sum=float(values.sum()), sum_squares=float((values**2).sum()))


# ---------------------------------------------------------------- relative lift


def _ctr_units(rng: np.random.Generator, n: int, pre: float, post: float) -> tuple[np.ndarray, ...]:
    """Users whose post-exposure CTR moves one for one with their pre-exposure CTR (theta ~ 1)."""
    p = pre + 0.005 * rng.standard_normal(n)
    d, xd = rng.poisson(40, n) + 1.0, rng.poisson(40, n) + 1.0
    post_ctr = post + (p - pre) + rng.normal(0, 0.001, n)
    return post_ctr * d, d, p * xd, xd


def test_issue_input_cuped_control_ctr_below_zero_decides_from_the_absolute_effect() -> None:
    """A control whose pre-period CTR was higher: its CUPED-adjusted CTR is -0.0005. The relative lift was
    "-33,173%" and the decision `worse`, while the absolute effect is about +0.2 and overwhelming."""
    rng = np.random.default_rng(42)
    control, treatment = _ctr_units(rng, 500, 0.30, 0.019), _ctr_units(rng, 500, 0.26, 0.19)
    row = _treated(_analyze({"control": _row(*control), "treatment": _row(*treatment)}, planned=500, kind="ratio"))
    assert row["cuped_applied"]
    assert row["control_value"] == pytest.approx(-0.0005, abs=0.0003)
    assert row["absolute_effect"] == pytest.approx(0.21, abs=0.01) and row["absolute_p"] < 1e-12
    assert row["decision"] == "better" and row["decision_ci_low"] > 0
    assert row["chance_to_win"] > 0.999
    assert pd.isna(row["relative_lift"]) and pd.isna(row["relative_ci_low"]) and pd.isna(row["sequential_ci_low"])
    assert "negative" in row["relative_note"]


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_a_negative_control_mean_keeps_the_sign_of_effect_chance_and_decision(higher_is_better: bool) -> None:
    """A net-change metric: control mean -2, treatment -1 (an increase of 1). A ratio to -2 would call it a
    -50% "lift" and flip chance to win and decision."""
    rng = np.random.default_rng(5)
    control, treatment = rng.normal(-2, 1, 400), rng.normal(-1, 1, 400)
    row = _treated(_analyze({"control": _row(control), "treatment": _row(treatment)}, planned=400,
                            higher_is_better=higher_is_better))  # fmt: skip
    assert (
        row["absolute_effect"] == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
        and row["absolute_effect"] > 0
    )
    assert row["decision"] == ("better" if higher_is_better else "worse")
    assert row["chance_to_win"] == pytest.approx(0.0 if not higher_is_better else 1.0, abs=1e-6)
    assert pd.isna(row["relative_lift"]) and "negative" in row["relative_note"]


def test_a_control_of_zero_keeps_the_absolute_result() -> None:
    """No control unit spent anything: the whole row used to become `insufficient_data`."""
    rng = np.random.default_rng(6)
    control, treatment = np.zeros(300), rng.exponential(2.0, 300) * (rng.random(300) < 0.1)
    row = _treated(_analyze({"control": _row(control), "treatment": _row(treatment)}, planned=300))
    assert row["decision"] == "better"
    assert row["absolute_effect"] == pytest.approx(treatment.mean(), rel=1e-12)
    se = np.sqrt(np.concatenate([control, treatment]).var() * (2 / 300))  # pooled: the control has no variance
    assert row["absolute_p"] == pytest.approx(2 * stats.norm.sf(treatment.mean() / se), rel=1e-9)
    assert pd.isna(row["relative_lift"]) and "is 0" in row["relative_note"]


def test_control_value_is_the_adjusted_value_the_effects_are_computed_from() -> None:
    """absolute_effect / control_value = relative_lift wherever both are given: CUPED-adjusted means and ratios,
    and plain metrics."""
    rng = np.random.default_rng(7)
    arms = {}
    for variant, lift in (("control", 0.0), ("treatment", 0.05)):
        x = rng.gamma(2, 5, 800)
        arms[variant] = {
            "revenue": _row(x * (1 + lift) + rng.normal(0, 3, 800), x=x),
            "ctr": _row(*_ctr_units(rng, 800, 0.05 + rng.normal(0, 0.002), 0.06 * (1 + lift))),
            "plain": _row(rng.exponential(3 * (1 + lift), 800)),
        }
    rows = []
    for metric in ("revenue", "ctr", "plain"):
        for variant in arms:
            rows.append({"experiment_id": "e", "metric": metric, "variant": variant,
                         "metric_kind": "ratio" if metric == "ctr" else "mean", **arms[variant][metric]})  # fmt: skip
    variants = pd.DataFrame({"experiment_id": "e", "variant": ["control", "treatment"], "is_control": [True, False],
                             "weight": 0.5, "planned_units_per_variant": 800})  # fmt: skip
    treated = analyze(pd.DataFrame(rows), variants).query("not is_control").set_index("metric")
    assert treated.loc[["revenue", "ctr"], "cuped_applied"].all()
    for metric, row in treated.iterrows():
        assert row["absolute_effect"] / row["control_value"] == pytest.approx(row["relative_lift"], rel=1e-12), metric
    # The unadjusted value is still reported as `value`; adjusted and raw differ under CUPED.
    assert treated.loc["revenue", "control_value"] != pytest.approx(arms["control"]["revenue"]["sum"] / 800)


# ---------------------------------------------------------------- summary files with holes


def test_summary_csv_with_a_metric_lacking_its_control_row_names_experiment_metric_and_variant(tmp_path: Path) -> None:
    text = (
        "experiment,metric,variant,n,sum,sum_squares\n"
        "exp1,conversion,control,1000,100,100\n"
        "exp1,conversion,treatment,1000,120,120\n"
        "exp1,revenue,treatment,1000,5000,90000\n"
    )
    with pytest.raises(SummaryFileError, match=r"experiment 'exp1', metric 'revenue' has no row for the control "
                                               r"variant 'control'"):  # fmt: skip
        _csv(tmp_path, text)


def test_summary_csv_with_a_variant_lacking_a_row_for_a_metric_names_it(tmp_path: Path) -> None:
    text = (
        "experiment,metric,variant,n,sum,sum_squares\n"
        "exp1,conversion,control,1000,100,100\n"
        "exp1,conversion,treatment_a,1000,120,120\n"
        "exp1,conversion,treatment_b,1000,110,110\n"
        "exp1,revenue,control,1000,5000,90000\n"
        "exp1,revenue,treatment_a,1000,5100,91000\n"
    )
    with pytest.raises(SummaryFileError, match=r"experiment 'exp1', metric 'revenue' has no row for variant "
                                               r"'treatment_b'"):  # fmt: skip
        _csv(tmp_path, text)


def test_stats_without_a_row_give_an_explicit_row_not_a_silent_omission() -> None:
    """The marts path (no CSV check before it): a variant or control without stats for a metric still gets its
    rows, labelled `insufficient_data` with a note naming the missing row."""
    rng = np.random.default_rng(8)
    both = {v: _row(rng.exponential(1, 100)) for v in ("control", "treatment")}
    rows = [{"experiment_id": "e", "metric": "m1", "variant": v, **r} for v, r in both.items()]
    rows.append({"experiment_id": "e", "metric": "m2", "variant": "treatment", **both["treatment"]})
    rows.append({"experiment_id": "e", "metric": "m3", "variant": "control", **both["control"]})
    variants = pd.DataFrame({"experiment_id": "e", "variant": ["control", "treatment"], "is_control": [True, False],
                             "weight": 0.5, "planned_units_per_variant": None})  # fmt: skip
    results = analyze(pd.DataFrame(rows), variants).set_index(["metric", "variant"])
    assert len(results) == 6  # 3 metrics x 2 variants, whatever is missing
    assert results.loc[("m2", "treatment"), "decision"] == "insufficient_data"
    assert "no stats row for the control 'control' of metric 'm2'" in results.loc[("m2", "treatment"), "note"]
    assert results.loc[("m3", "treatment"), "decision"] == "insufficient_data"
    assert "no stats row for variant 'treatment' of metric 'm3'" in results.loc[("m3", "treatment"), "note"]
    assert results.loc[("m1", "treatment"), "decision"] == "keep_running"


# ---------------------------------------------------------------- planning


def _closed_form_power(n: int, p0: float, p1: float, alpha: float) -> float:
    """Normal approximation on the arcsine scale (Cohen's h), computed with numpy/scipy directly."""
    h = abs(2 * np.arcsin(np.sqrt(p1)) - 2 * np.arcsin(np.sqrt(p0)))
    return float(stats.norm.cdf(h * np.sqrt(n / 2) - stats.norm.ppf(1 - alpha / 2)))


def _rate_of_wins(n: int, runs: int, seed: int) -> float:
    """Share of simulated 4-variant experiments (one treatment +2 points on 10%, two without effect), read once at
    their planned size by `analyze`, in which the treatment with the effect is called `better`."""
    rng = np.random.default_rng(seed)
    rates = {"control": 0.10, "t_effect": 0.12, "t_null_1": 0.10, "t_null_2": 0.10}
    rows, arms = [], []
    for run in range(runs):
        for variant, rate in rates.items():
            successes = int(rng.binomial(n, rate))
            rows.append({"experiment_id": f"e{run}", "metric": "conversion", "variant": variant, "n": n,
                         "sum": successes, "sum_squares": successes, "metric_kind": "proportion"})  # fmt: skip
            arms.append({"experiment_id": f"e{run}", "variant": variant, "is_control": variant == "control",
                         "weight": 0.25, "planned_units_per_variant": n})  # fmt: skip
    results = analyze(pd.DataFrame(rows), pd.DataFrame(arms))
    effect = results[results["variant"] == "t_effect"]
    assert set(effect["decision_basis"]) == {"fixed_horizon"}
    return float((effect["decision"] == "better").mean())


def test_plan_for_four_variants_delivers_80_percent_power_under_the_holm_correction_analyze_applies() -> None:
    """`tailor experiments plan --variants 4`: 3 comparisons, Holm at the alpha the rule keeps for the planned
    read. Closed form (Bonferroni level, Holm's first step) and 1,000 simulated experiments through `analyze`
    (binomial standard error 1.3%). The old sizing (one comparison at 0.05) gives ~62% under the same rule."""
    final = alpha_budget(0.05, planned=True).final
    n = sample_size_per_variant(0.10, 0.02, alpha=final, comparisons=3)
    assert _closed_form_power(n, 0.10, 0.12, final / 3) == pytest.approx(0.80, abs=0.005)
    assert 0.76 <= _rate_of_wins(n, 1000, seed=1) <= 0.85
    old_n = sample_size_per_variant(0.10, 0.02)
    assert _closed_form_power(old_n, 0.10, 0.12, final / 3) < 0.66
    assert _rate_of_wins(old_n, 1000, seed=2) < 0.70


def test_minimum_detectable_effect_validates_its_domain() -> None:
    """Baseline 0.9 with 10 users per arm returned +0.01: the arcsine inversion wrapped past a rate of 1."""
    with pytest.raises(ValueError, match=r"cannot detect any increase of a baseline of 0\.9"):
        minimum_detectable_effect(0.9, 10)
    with pytest.raises(ValueError, match="baseline must be a rate"):
        minimum_detectable_effect(1.2, 1000)
    # Inside the domain it inverts the sample size (closed form on the arcsine scale).
    mde = minimum_detectable_effect(0.9, 500, comparisons=3)
    assert sample_size_per_variant(0.9, mde, comparisons=3) == pytest.approx(500, abs=1)
    assert _closed_form_power(500, 0.9, 0.9 + mde, 0.05 / 3) == pytest.approx(0.8, abs=1e-6)


# ---------------------------------------------------------------- which interval decides


def test_issue_input_two_against_three_units_decides_from_the_interval_it_shows() -> None:
    """n = 2 vs 3 at the planned size: the decision reads the absolute effect's Welch interval at its Holm level
    (docs/experiments.md); it says `better` only because that interval excludes 0 (here the delta-method relative
    interval, a description, happens to include it)."""
    control, treatment = np.array([2.4, 1.1]), np.array([4.5, 7.8, 5.9])
    row = _treated(_analyze({"control": _row(control), "treatment": _row(treatment)}, planned=2))
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert row["absolute_p"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert row["decision_basis"] == "fixed_horizon" and row["decision_alpha"] == pytest.approx(0.04)
    low, high = welch.confidence_interval(0.96)
    assert (row["decision_ci_low"], row["decision_ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert row["decision"] == "better" and low > 0
    assert row["relative_ci_low"] < 0  # why the rule must name one interval


@pytest.mark.parametrize("planned", [None, 3])
def test_every_decision_is_the_verdict_of_its_own_interval(planned: int | None) -> None:
    """Tiny random experiments (2-6 units per arm, three variants, two metrics), interim (no plan) and at the
    read: better/worse exactly when decision_ci excludes 0 on that side, otherwise it includes 0."""
    rng = np.random.default_rng(9)
    checked = 0
    for _ in range(150):
        rows, arms = [], []
        for variant, shift in (("control", 0.0), ("b", 2.0), ("c", -1.0)):
            size = int(rng.integers(2, 7))
            arms.append({"experiment_id": "e", "variant": variant, "is_control": variant == "control",
                         "weight": 1 / 3, "planned_units_per_variant": planned})  # fmt: skip
            for metric in ("m1", "m2"):
                values = np.round(rng.normal(5 + shift * rng.random(), 1, size), 1)
                rows.append({"experiment_id": "e", "metric": metric, "variant": variant, **_row(values)})
        results = analyze(pd.DataFrame(rows), pd.DataFrame(arms))
        for r in results[~results["is_control"]].itertuples():
            if r.decision == "insufficient_data":
                continue
            checked += 1
            if r.decision in ("better", "worse"):
                assert r.decision_ci_low > 0 or r.decision_ci_high < 0
                assert (r.decision_ci_low > 0) == (r.decision == "better")
            else:
                assert r.decision_ci_low <= 0 <= r.decision_ci_high
    assert checked > 500
