"""The results layer: the general moments estimator, ratio CUPED, novelty trend, decisions, the results table and
the summary CSV. Each number is checked against an independent computation on unit-level data or another library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from ml.experiments.analysis import RESULT_COLUMNS, analyze
from ml.experiments.decision import non_inferiority
from ml.experiments.moments import Moments, compare_moments
from ml.experiments.novelty import effect_trend
from ml.experiments.summary_csv import SummaryFileError, read_summary_csv
from ml.experiments.traffic import days_needed

pytestmark = pytest.mark.unit


def _row(m: np.ndarray, d: np.ndarray | None = None, x: np.ndarray | None = None, xd: np.ndarray | None = None) -> dict:
    """A stats-table row computed the slow way, from unit-level values."""
    row: dict[str, float | int | None] = {"n": len(m), "sum": m.sum(), "sum_squares": (m * m).sum()}
    if d is not None:
        row |= {"denominator_sum": d.sum(), "denominator_sum_squares": (d * d).sum(),
                "main_denominator_sum_product": (m * d).sum()}  # fmt: skip
    if x is not None:
        row |= {"covariate_sum": x.sum(), "covariate_sum_squares": (x * x).sum(),
                "main_covariate_sum_product": (m * x).sum()}  # fmt: skip
        if d is not None and xd is not None:
            row |= {
                "covariate_denominator_sum": xd.sum(),
                "covariate_denominator_sum_squares": (xd * xd).sum(),
                "covariate_covariate_denominator_sum_product": (x * xd).sum(),
                "main_covariate_denominator_sum_product": (m * xd).sum(),
                "denominator_covariate_sum_product": (d * x).sum(),
                "denominator_covariate_denominator_sum_product": (d * xd).sum(),
            }
    return row


def _ratio_units(rng: np.random.Generator, n: int, ctr: float) -> tuple[np.ndarray, ...]:
    """Users with a persistent propensity: pre and post impressions and clicks, correlated through the user."""
    propensity = rng.beta(2, 2 / ctr - 2, n)
    pre_imps = rng.poisson(20, n) + 1
    post_imps = rng.poisson(25, n) + 1
    return (
        rng.binomial(post_imps, propensity).astype(float),
        post_imps.astype(float),
        rng.binomial(pre_imps, propensity).astype(float),
        pre_imps.astype(float),
    )


def test_ratio_cuped_equals_the_unit_level_linearization() -> None:
    rng = np.random.default_rng(1)
    arms = [_ratio_units(rng, 800, 0.05), _ratio_units(rng, 900, 0.055)]
    result = compare_moments(*(Moments.from_row(_row(*arm)) for arm in arms))
    # Reference: linearize each unit around its own variant's ratios, pool theta from unit-level values.
    lin, cov = [], []
    for m, d, x, xd in arms:
        r, rx = m.sum() / d.sum(), x.sum() / xd.sum()
        lin.append((m - r * d) / d.mean())
        cov.append((x - rx * xd) / xd.mean())
    theta = sum(((a - a.mean()) * (b - b.mean())).sum() for a, b in zip(lin, cov, strict=True)) / sum(
        ((b - b.mean()) ** 2).sum() for b in cov
    )
    ratios = [m.sum() / d.sum() for m, d, _, _ in arms]
    cov_ratios = [x.sum() / xd.sum() for _, _, x, xd in arms]
    expected = (ratios[1] - ratios[0]) - theta * (cov_ratios[1] - cov_ratios[0])
    var = sum(np.var(a - theta * b, ddof=1) / len(a) for a, b in zip(lin, cov, strict=True))
    assert result.adjusted
    assert result.theta == pytest.approx(theta, rel=1e-9)
    assert result.comparison.absolute == pytest.approx(expected, rel=1e-9)
    assert result.comparison.absolute_se == pytest.approx(np.sqrt(var), rel=1e-9)


def test_mean_without_covariate_is_the_welch_z_interval() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.exponential(5, 400), rng.exponential(5.5, 500)
    result = compare_moments(Moments.from_row(_row(a)), Moments.from_row(_row(b)))
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert not result.adjusted
    assert result.comparison.absolute == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert result.comparison.absolute_se == pytest.approx(se, rel=1e-9)
    z = scipy_stats.norm.ppf(0.975)
    assert result.comparison.absolute_ci[0] == pytest.approx(b.mean() - a.mean() - z * se, rel=1e-9)


def test_ratio_cuped_covers_and_cuts_variance_by_about_rho_squared() -> None:
    """2,000 simulated A/As of a user-randomized CTR: 95% intervals cover 0 in 93.5-96.5%, and the adjusted
    variance is about (1 - rho^2) of the unadjusted one, rho the pre/post correlation of linearized values."""
    rng = np.random.default_rng(3)
    covered, reductions, rho2 = 0, [], []
    for _ in range(2000):
        arms = [_ratio_units(rng, 300, 0.05), _ratio_units(rng, 300, 0.05)]
        result = compare_moments(*(Moments.from_row(_row(*arm)) for arm in arms))
        low, high = result.comparison.absolute_ci
        covered += low <= 0 <= high
        reductions.append(result.variance_reduction)
        m, d, x, xd = (np.concatenate([arms[0][i], arms[1][i]]) for i in range(4))
        lin, cov = m - m.sum() / d.sum() * d, x - x.sum() / xd.sum() * xd
        rho2.append(np.corrcoef(lin, cov)[0, 1] ** 2)
    assert 0.935 <= covered / 2000 <= 0.965
    assert np.mean(reductions) == pytest.approx(np.mean(rho2), abs=0.02)
    assert np.mean(reductions) > 0.1


def test_effect_trend_equals_weighted_least_squares() -> None:
    rng = np.random.default_rng(4)
    days = np.arange(14.0)
    ses = 0.01 + 0.002 * days
    effects = 0.05 - 0.002 * days + rng.normal(0, ses)
    trend = effect_trend(days, effects, ses)
    fit = sm.WLS(effects, sm.add_constant(days), weights=1 / ses**2).fit()
    assert trend is not None
    assert trend.slope == pytest.approx(fit.params[1], rel=1e-9)
    # Known per-day variances: the slope's se is the WLS one at scale 1 (or the larger one when overdispersed).
    # WLS's bse is sqrt(scale / Sxx); the trend uses scale floored at 1 (the per-day errors are known).
    assert trend.slope_se == pytest.approx(fit.bse[1] * np.sqrt(max(fit.scale, 1.0) / fit.scale), rel=1e-9)
    assert trend.fades(overall_effect=0.04, overall_p=0.001) == (trend.p_value < 0.05)
    assert not trend.fades(overall_effect=0.04, overall_p=0.5)  # no significant effect: nothing to fade
    assert effect_trend([0, 1], [0.1, 0.2], [0.1, 0.1]) is None


@pytest.mark.parametrize(
    ("ci", "higher_is_better", "label"),
    [
        ((-0.03, 0.02), True, "guardrail_ok"),
        ((-0.08, 0.01), True, "guardrail_inconclusive"),
        ((-0.12, -0.06), True, "guardrail_breached"),
        ((0.06, 0.12), False, "guardrail_breached"),  # lower is better: +6..12% is a breach of a 5% margin
        ((-0.02, 0.03), False, "guardrail_ok"),
    ],
)
def test_non_inferiority_labels(ci: tuple[float, float], higher_is_better: bool, label: str) -> None:
    assert non_inferiority(ci, 0.05, higher_is_better) == label


def _experiment_frames(rng: np.random.Generator, n: tuple[int, int], lift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for variant, units, factor in (("control", n[0], 1.0), ("treatment", n[1], 1 + lift)):
        conv = (rng.random(units) < 0.1 * factor).astype(float)
        revenue = rng.exponential(10 * factor, units)
        pre_revenue = revenue * 0.5 + rng.exponential(5, units)
        clicks, imps, pre_clicks, pre_imps = _ratio_units(rng, units, 0.05 * factor)
        for metric, kind, role, row in (
            ("conversion", "proportion", "primary", _row(conv)),
            ("revenue", "mean", "secondary", _row(revenue, x=pre_revenue)),
            ("ctr", "ratio", "primary", _row(clicks, imps, pre_clicks, pre_imps)),
            ("ctr_guard", "ratio", "guardrail", _row(clicks, imps)),
        ):
            rows.append({"experiment_id": "e1", "variant": variant, "metric": metric, "metric_kind": kind,
                         "metric_role": role, "higher_is_better": True,
                         "non_inferiority_margin": 0.05 if role == "guardrail" else None, **row})  # fmt: skip
    variants = pd.DataFrame(
        {
            "experiment_id": ["e1", "e1"],
            "variant": ["control", "treatment"],
            "is_control": [True, False],
            "weight": [0.5, 0.5],
            "planned_units_per_variant": [100, 100],
        }
    )
    return pd.DataFrame(rows), variants


def test_results_table_rows_corrections_and_srm() -> None:
    stats, variants = _experiment_frames(np.random.default_rng(5), (2000, 2000), lift=0.15)
    results = analyze(stats, variants)
    assert list(results.columns) == RESULT_COLUMNS
    assert len(results) == 8  # 4 metrics x 2 variants
    control = results[results["is_control"]]
    assert control["absolute_effect"].isna().all() and control["decision"].isna().all()
    treated = results[~results["is_control"]].set_index("metric")
    tested = treated.drop(index="ctr_guard")
    expected = multipletests(tested["absolute_p"], method="holm")[1]
    assert np.allclose(tested["p_value_holm"], expected, rtol=1e-12)
    assert pd.isna(treated.loc["ctr_guard", "p_value_holm"])  # guardrails are not in the family
    assert treated.loc["ctr_guard", "decision"].startswith("guardrail_")
    assert treated.loc["revenue", "cuped_applied"] and treated.loc["revenue", "variance_reduction"] > 0.1
    assert treated.loc["revenue", "decision"] == "better"
    assert not treated["srm_mismatch"].any()

    skewed, _ = _experiment_frames(np.random.default_rng(6), (2000, 1700), lift=0.0)
    flagged = analyze(skewed, variants)
    assert flagged["srm_mismatch"].all() and (flagged["srm_p"] < 0.001).all()
    assert set(flagged.loc[~flagged["is_control"], "decision"]) == {"srm_invalid"}


def test_summary_csv_round_trip_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "experiment,metric,variant,n,sum,sum_squares\n"
        "exp1,conversion,control,1000,100,100\n"
        "exp1,conversion,treatment,1000,130,130\n"
    )
    stats, variants = read_summary_csv(good)
    results = analyze(stats, variants)
    row = results[results["variant"] == "treatment"].iloc[0]
    # Reference: Welch t on 0/1 data with the same counts.
    a = np.r_[np.ones(100), np.zeros(900)]
    b = np.r_[np.ones(130), np.zeros(870)]
    assert row["absolute_p"] == pytest.approx(scipy_stats.ttest_ind(b, a, equal_var=False).pvalue, rel=1e-9)

    cases = {
        "experiment,metric,variant,n,sum\nexp1,c,control,10,1\n": "missing column(s) sum_squares",
        "experiment,metric,variant,n,sum,sum_squares\nexp1,c,control,10,abc,1\nexp1,c,t,10,1,1\n":
            "line 2, column 'sum': 'abc' is not a number",
        "experiment,metric,variant,n,sum,sum_squares\nexp1,c,control,10,1,1\nexp1,c,t,ten,1,1\n":
            "line 3, column 'n': 'ten' is not a whole number",
        "experiment,metric,variant,n,sum,sum_squares\nexp1,c,control,10,1,1\n": "has one variant",
        "experiment,metric,variant,n,sum,sum_squares\nexp1,c,control,10,1,1\nexp1,c,control,10,1,1\n":
            "appears more than once",
        "experiment,metric,variant,n,sum,sum_squares,metric_role\nexp1,c,control,10,1,1,guardrail\n":
            "column 'non_inferiority_margin': a guardrail needs a margin",
        "experiment,metric,variant,n,sum,sum_squares,denominator_sum\nexp1,c,control,10,1,1,5\n":
            "column 'denominator_sum_squares': empty, but a ratio metric needs all of",
    }  # fmt: skip
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(SummaryFileError) as caught:
            read_summary_csv(bad)
        assert message in str(caught.value), (message, str(caught.value))
    with pytest.raises(SummaryFileError, match="no such file"):
        read_summary_csv(tmp_path / "absent.csv")


def test_days_needed_counts_distinct_new_users() -> None:
    # Day 1: users a, b; day 2: a again and c; day 3: d. Returning users add no units.
    activity = pd.DataFrame(
        {"user_id": ["a", "b", "a", "c", "d"],
         "activity_date": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-01-02", "2026-01-02", "2026-01-03"])}
    )  # fmt: skip
    assert days_needed(activity, 2).days == 1
    assert days_needed(activity, 3).days == 2
    assert days_needed(activity, 4).days == 3
    beyond = days_needed(activity, 6)  # the last week brings 4/3 new users a day: 2 more need 2 more days
    assert beyond.extrapolated and beyond.days == 5
    with pytest.raises(ValueError, match="no activity"):
        days_needed(activity.iloc[0:0], 2)
