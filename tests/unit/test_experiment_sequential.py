"""Decisions keep their error rate when people look every day (issue 12, section 4), on known-truth simulations.

The rule (`ml.experiments.decision`): always-valid evidence with Holm across the experiment's comparisons before
the planned size, one Holm-corrected fixed-horizon read at it, decisions frozen once taken. These tests simulate
A/A experiments looked at every day and count how often any comparison of an experiment is called better or
worse. Each also computes, on the same simulated looks, the rule without its correction and the naive daily
fixed-horizon rule, and asserts that the bound would catch them: the tests can fail.
(The same on cumulative per-unit metrics through the real marts: tests/integration/test_experiment_calibration.py
and bench/bench_sequential_aa.py.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ml.experiments.analysis import analyze, analyze_daily
from ml.experiments.decision import Candidate, ExperimentRule, alpha_budget
from ml.experiments.frequentist import compare_means
from ml.experiments.multiple import holm, holm_levels
from ml.experiments.sequential import always_valid_p, confidence_sequence
from ml.experiments.stats import MeanStats

pytestmark = pytest.mark.unit

ALPHA = 0.05
METRICS = ("m1", "m2", "m3", "m4")
DAYS, PER_DAY, PLANNED_DAY = 15, 40, 10  # units per arm per day; the plan is reached on day 10


def test_always_valid_p_is_the_level_at_which_the_sequence_excludes_zero() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        estimate, se = rng.normal(0, 1), rng.uniform(0.1, 1)
        n, planned, tuning = int(rng.integers(10, 5000)), int(rng.integers(100, 5000)), rng.uniform(0.001, 0.1)
        p = always_valid_p(estimate, se, n, planned, tuning)
        if not 1e-6 < p < 0.999:
            continue
        for level, excluded in ((p * 1.001, True), (p * 0.999, False)):
            low, high = confidence_sequence(estimate, se, n, planned, level, tuning)
            assert (low > 0 or high < 0) == excluded


def test_holm_levels_reject_as_statsmodels_and_match_their_intervals() -> None:
    rng = np.random.default_rng(2)
    for size in (1, 2, 4, 9):
        for trial in range(200):
            p = list(rng.uniform(0, 0.06, size) ** rng.uniform(1, 3))
            levels = holm_levels(p, ALPHA)
            # holm() equals statsmodels (test_experiment_stats); statsmodels itself for a few (it runs gc.collect()
            # on every call, a third of a second each here).
            reference = multipletests(p, alpha=ALPHA, method="holm")[0] if trial < 3 else [q < ALPHA for q in holm(p)]
            assert [r for r, _ in levels] == list(reference)
            # A comparison's interval at its level excludes 0 exactly when it is rejected: p < level.
            assert all((pi < level) == rejected for pi, (rejected, level) in zip(p, levels, strict=True))


def _simulate_looks(rng: np.random.Generator, runs: int) -> np.ndarray:
    """Per run, look, metric and arm: cumulative (n, sum, sum of squares) of skewed per-unit values (A/A)."""
    values = rng.exponential(3.0, (runs, DAYS * PER_DAY, len(METRICS), 2))
    looks = np.arange(1, DAYS + 1) * PER_DAY
    sums = values.cumsum(axis=1)[:, looks - 1]
    squares = (values**2).cumsum(axis=1)[:, looks - 1]
    return np.stack([np.broadcast_to(looks[None, :, None, None], sums.shape), sums, squares], axis=-1)


def _comparisons(look: np.ndarray) -> list[tuple[str, object]]:
    out = []
    for k, metric in enumerate(METRICS):
        arms = [MeanStats(n=int(look[k, a, 0]), sum=float(look[k, a, 1]), sum_squares=float(look[k, a, 2]))
                for a in (0, 1)]  # fmt: skip
        out.append((metric, compare_means(arms[0], arms[1], ALPHA)))
    return out


def _false_positive_rates(runs: int, planned: bool, seed: int) -> dict[str, float]:
    """Family-wise false-positive rates over `runs` simulated A/A experiments with four metrics, looked at daily:
    the rule, the rule without Holm (the same alpha split, every comparison at its own level), and the naive
    rule (the fixed-horizon Holm p every day)."""
    rng = np.random.default_rng(seed)
    data = _simulate_looks(rng, runs)
    budget = alpha_budget(ALPHA, planned)
    planned_units = 2 * PLANNED_DAY * PER_DAY
    hits = {"rule": 0, "uncorrected": 0, "naive": 0}
    for run in range(runs):
        rule = ExperimentRule([(m, "treatment") for m in METRICS], ALPHA, planned)
        found = dict.fromkeys(hits, False)
        for day in range(DAYS):
            comparisons = _comparisons(data[run, day])
            units = int(data[run, day, 0, 0, 0]) * 2
            reached = planned and day + 1 >= PLANNED_DAY
            candidates = [Candidate(m, "treatment", c, units, planned_units) for m, c in comparisons]  # type: ignore[arg-type]
            verdicts = rule.look(candidates, reached, srm_mismatch=False, as_of=day)
            found["rule"] |= any(v.decision in ("better", "worse") for v in verdicts.values())
            ps = [c.absolute_p for _, c in comparisons]  # type: ignore[attr-defined]
            found["naive"] |= min(holm(ps)) < ALPHA  # holm() equals statsmodels (test_experiment_stats)
            if reached and day + 1 == PLANNED_DAY:
                found["uncorrected"] |= min(ps) < budget.final
            elif not reached:
                found["uncorrected"] |= any(
                    always_valid_p(c.absolute, c.absolute_se, units, planned_units, budget.interim) < budget.interim  # type: ignore[attr-defined]
                    for _, c in comparisons
                )
        for name, hit in found.items():
            hits[name] += hit
    return {name: count / runs for name, count in hits.items()}


def _bound(runs: int) -> float:
    """The most false positives a 5% family-wise error allows in `runs` independent experiments: the 99.9%
    quantile of Binomial(runs, 0.05), so a calibrated rule fails this test 0.1% of the time."""
    return float(stats.binom.ppf(0.999, runs, ALPHA)) / runs


def test_daily_looks_with_a_planned_read_keep_the_family_wise_error_under_alpha() -> None:
    """600 A/A experiments, 4 metrics, 15 daily looks, the planned size on day 10. The uncorrected rule (each
    comparison at the alpha split's levels, no Holm) and the naive daily fixed-horizon rule both exceed the bound
    by far on the same looks."""
    runs = 600
    rates = _false_positive_rates(runs, planned=True, seed=3)
    assert rates["rule"] <= _bound(runs), rates
    assert rates["uncorrected"] > _bound(runs), rates
    assert rates["naive"] > _bound(runs), rates


def test_daily_looks_without_a_plan_keep_the_family_wise_error_under_alpha() -> None:
    """Unplanned: always-valid looks only, all of alpha, never a fixed-horizon read. The naive rule (what an
    unplanned experiment got before) exceeds the bound on the same looks."""
    runs = 400
    rates = _false_positive_rates(runs, planned=False, seed=4)
    assert rates["rule"] <= _bound(runs), rates
    assert rates["naive"] > _bound(runs), rates


def _daily_frame(rng: np.random.Generator, effect: float) -> pd.DataFrame:
    """A small daily cumulative stats table (two metrics, control and treatment) in the marts' shape."""
    rows = []
    totals = {(m, v): np.zeros(3) for m in ("m1", "m2") for v in ("control", "treatment")}
    for day in range(12):
        for (metric, variant), total in totals.items():
            values = rng.exponential(3.0 * (1 + (effect if variant == "treatment" and metric == "m1" else 0)), 50)
            total += (len(values), values.sum(), (values**2).sum())
            rows.append({"as_of_date": pd.Timestamp("2026-01-01") + pd.Timedelta(days=day), "experiment_id": "e",
                         "metric": metric, "variant": variant, "n": int(total[0]), "sum": total[1],
                         "sum_squares": total[2]})  # fmt: skip
    return pd.DataFrame(rows)


def test_results_take_the_decisions_of_the_daily_looks_and_decisions_stay_taken() -> None:
    """experiment_results (`analyze(..., history=daily)`) and experiment_daily_results (`analyze_daily`) apply
    one rule: the overall decisions are the last day's. A strong effect is called at an interim look, on the
    always-valid interval, and stays called; the other metric is read once at the planned size and frozen."""
    daily = _daily_frame(np.random.default_rng(5), effect=0.6)
    variants = pd.DataFrame({"experiment_id": "e", "variant": ["control", "treatment"], "is_control": [True, False],
                             "weight": 0.5, "planned_units_per_variant": 400})  # fmt: skip
    by_day = analyze_daily(daily, variants)
    last_day = daily["as_of_date"].max()
    overall = analyze(daily[daily["as_of_date"] == last_day].drop(columns="as_of_date"), variants, history=daily)
    columns = ["metric", "variant", "decision", "decision_basis", "decision_ci_low", "decided_on"]
    expected = by_day[by_day["as_of_date"] == last_day][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(overall[columns].reset_index(drop=True), expected)

    treated = by_day[~by_day["is_control"]]
    m1 = treated[treated["metric"] == "m1"].set_index("as_of_date")
    first = m1.index[m1["decision"] == "better"].min()
    assert m1.loc[first, "decision_basis"] == "sequential" and m1.loc[first, "units"] < 400  # an interim call
    assert (m1.loc[first:, "decision"] == "better").all() and (m1.loc[first:, "decided_on"] == first).all()
    m2 = treated[treated["metric"] == "m2"].set_index("as_of_date")
    read_day = m2.index[m2["units"] >= 400].min()
    assert (m2.loc[: read_day - pd.Timedelta(days=1), "decision"] == "keep_running").all()
    assert m2.loc[read_day, "decision_basis"] == "fixed_horizon"
    assert (m2.loc[read_day:, "decided_on"] == read_day).all()
    assert m2.loc[read_day:, "decision"].nunique() == 1


def _reversing_frame(rng: np.random.Generator, higher_is_better: bool) -> pd.DataFrame:
    """m1's treatment is much better for 4 days, then worse with four times the traffic: the cumulative estimate
    crosses zero after the early call."""
    rows = []
    totals = {v: np.zeros(3) for v in ("control", "treatment")}
    good = 1.0 if higher_is_better else -1.0
    for day in range(14):
        early = day < 4
        for variant, total in totals.items():
            shift = 0.0 if variant == "control" else (2.0 if early else -1.5) * good
            values = rng.normal(5.0 + shift, 1.0, 60 if early else 240)
            total += (len(values), values.sum(), (values**2).sum())
            rows.append({"as_of_date": pd.Timestamp("2026-01-01") + pd.Timedelta(days=day), "experiment_id": "e",
                         "metric": "m1", "variant": variant, "n": int(total[0]), "sum": total[1],
                         "sum_squares": total[2], "higher_is_better": higher_is_better})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_a_standing_label_beside_a_reversed_estimate_gets_a_note(higher_is_better: bool) -> None:
    """Rule 4 keeps the early 'better'; the note tells the analyst today's estimate now favours the control."""
    daily = _reversing_frame(np.random.default_rng(8), higher_is_better)
    variants = pd.DataFrame({"experiment_id": "e", "variant": ["control", "treatment"], "is_control": [True, False],
                             "weight": 0.5})  # fmt: skip
    last_day = daily["as_of_date"].max()
    overall = analyze(daily[daily["as_of_date"] == last_day].drop(columns="as_of_date"), variants, history=daily)
    row = overall[~overall["is_control"]].iloc[0]
    assert row["decision"] == "better"
    assert pd.Timestamp(row["decided_on"]) < pd.Timestamp("2026-01-05")
    assert (row["absolute_effect"] < 0) == higher_is_better  # today's estimate favours the control
    assert row["chance_to_win"] < 0.05
    assert "decided better on 2026-01-0" in row["note"]
    assert "today's estimate points the other way" in row["note"]

    # The same experiment looked at only while the effect held: the label and today's estimate agree, no note.
    early = daily[daily["as_of_date"] <= pd.Timestamp("2026-01-04")]
    agreed = analyze(early[early["as_of_date"] == early["as_of_date"].max()].drop(columns="as_of_date"), variants,
                     history=early)  # fmt: skip
    agreed_row = agreed[~agreed["is_control"]].iloc[0]
    assert agreed_row["decision"] == "better"
    assert agreed_row["note"] is None or "points the other way" not in agreed_row["note"]


def test_the_apps_advice_names_a_label_whose_estimate_has_reversed() -> None:
    """Found by a trial: the note sat in the last column of a wide table; the page's advice now says it."""
    from app.lib.experiments import ExperimentStatus, advice

    daily = _reversing_frame(np.random.default_rng(8), higher_is_better=True)
    daily["metric_role"] = "primary"
    variants = pd.DataFrame({"experiment_id": "e", "variant": ["control", "treatment"], "is_control": [True, False],
                             "weight": 0.5})  # fmt: skip
    status = ExperimentStatus("e", "", "control", {"control": 2000, "treatment": 2000}, None, False, 0.5, False, {})

    def caveats(as_of: str) -> list[str]:
        upto = daily[daily["as_of_date"] <= pd.Timestamp(as_of)]
        last = upto[upto["as_of_date"] == upto["as_of_date"].max()].drop(columns="as_of_date")
        return advice(status, analyze(last, variants, history=upto)).caveats

    reversed_ = [c for c in caveats("2026-01-14") if c.startswith("Reversed since decided")]
    assert len(reversed_) == 1
    assert reversed_[0].startswith("Reversed since decided: m1 (treatment) was decided better on 2026-01-0")
    assert not [c for c in caveats("2026-01-04") if c.startswith("Reversed")]  # before the reversal
