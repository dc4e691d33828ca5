"""Small app helpers: typed text shown as typed, check results counted by what they mean."""

from __future__ import annotations

import pandas as pd
import pytest

from app.lib.ui import literal, rate

pytestmark = pytest.mark.unit


def test_typed_text_becomes_a_code_span_that_shows_it_as_typed() -> None:
    assert literal("u0000042") == "`u0000042`"
    assert literal("' OR 1=1 --") == "`' OR 1=1 --`"
    assert literal("a`b") == "``a`b``"  # a fence longer than any backtick run inside
    assert literal("`x``") == "``` `x`` ```"  # a space inside when it starts or ends with one
    assert literal("*bold* _em_ $x$") == "`*bold* _em_ $x$`"


def test_a_warned_check_is_not_counted_as_failed_and_a_dbt_test_says_its_rows() -> None:
    """Found by a trial: the health page counted a WARN-severity dbt test under "Failed", with no description."""
    import pandas as pd

    from app.lib.health import quality_checks

    checks = pd.DataFrame(
        {
            "asset": ["staging/stg_landing__events", "marts/fct_events", "feast/online_store"],
            "check": ["duplicates_repeat_their_event", "unique_fct_events_event_id", "online_matches_offline"],
            "passed": [False, True, False],
            "severity": ["WARN", "ERROR", "ERROR"],
            "description": [None, None, "3 of 10 rows differ"],
            "evaluated_at": pd.to_datetime(["2026-02-01"] * 3, utc=True),
            "run_id": ["r"] * 3,
            "metadata": [{"dagster_dbt/failed_row_count": 11}, {"dagster_dbt/failed_row_count": 0}, {}],
        }
    )
    got = quality_checks(checks)
    assert got["result"].tolist() == ["warned", "passed", "failed"]
    assert got["description"].tolist() == [
        "11 rows did not pass this dbt test: they are in logs/dbt.log",
        "",
        "3 of 10 rows differ",
    ]


def test_the_drift_chart_draws_what_the_verdict_judges_coloured_by_it() -> None:
    """Found by a trial: a passing check's feature whose raw PSI (3.6, one impression on the newest day) is above
    the fail line was drawn red beside the verdict "passed". The bar is the excess PSI the verdict judges."""
    import pandas as pd

    from app.lib.charts import STATUS_COLORS, psi_bars
    from app.lib.health import Drift

    table = pd.DataFrame(
        {
            "feature": ["noisy", "moved", "young"],
            "psi": [3.642, 0.40, 0.9],
            "status": ["ok", "fail", "young"],
            "excess_psi": [0.0, 0.31, 0.0],
            "day_baseline_psi": [0.02, 0.09, 0.0],
            "noise_psi": [8.1, 0.01, 0.0],
        }
    )
    [bar] = psi_bars(table, warn=0.1, fail=0.25).data
    # The young feature is not judged: not drawn (drawn grey above the others, it read as a failure: a trial).
    assert list(bar.y) == ["moved", "noisy"] and list(bar.x) == [0.31, 0.0]
    assert list(bar.marker.color) == [STATUS_COLORS["fail"], STATUS_COLORS["ok"]]
    assert bar.customdata[1].tolist() == ["ok", 3.642, 0.02, 8.1], "the raw PSI is still in the hover"
    assert "excess %{x:.3f}" in bar.hovertemplate and "PSI %{customdata[1]:.3f}" in bar.hovertemplate
    assert Drift("c", True, "WARN", "", table, 0.1, 0.25, 1, None, None).not_judged == ["young"]
    # A table from before the excess column existed is drawn on its raw PSI.
    [old] = psi_bars(table[["feature", "psi", "status"]], warn=0.1, fail=0.25).data
    assert list(old.x) == [3.642, 0.40]


def test_a_drift_check_names_the_champion_it_judged_when_another_holds_the_alias_now() -> None:
    """Found by a trial: the health page read "Champion v2" over a check that had judged v1's training window (v2
    was trained later in the same run)."""
    from app.lib.health import Drift

    check = Drift("c", True, "WARN", "", pd.DataFrame(), 0.1, 0.25, 1, None, None)
    assert check.judged(1) == "Champion v1" and check.judged(None) == "Champion v1"
    assert check.judged(2) == (
        "v1, the champion when the check ran (now v2: the next `tailor run` judges v2's training window)"
    )


def test_the_metrics_table_shows_one_format_per_kind_and_a_dash_where_nothing_is_defined() -> None:
    """Found by a trial: grey "None" in a guardrail's Holm and always-valid cells, notes cut off in a cell, and one
    column of decision intervals holding effects and lifts alike."""
    from app.lib.experiments import metric_notes, metrics_table, styled_metrics
    from app.lib.ui import NOT_DEFINED

    nan = float("nan")
    common = {"units": 1000, "value": 0.5, "absolute_effect": 0.01, "relative_lift": 0.02, "chance_to_win": 0.9}
    results = pd.DataFrame(
        [
            {**common, "metric": "ctr", "variant": "control", "is_control": True, "note": None},
            {
                **common,
                "metric": "ctr",
                "variant": "b",
                "is_control": False,
                "p_value_holm": 0.0123456,
                "sequential_ci_low": -0.05,
                "decision_ci_low": -0.001,
                "decision_ci_high": 0.0213,
                "decision_basis": "fixed_horizon",
                "decided_on": pd.Timestamp("2026-01-19"),
                "note": None,
            },
            {**common, "metric": "session_duration", "variant": "control", "is_control": True, "note": None},
            {
                **common,
                "metric": "session_duration",
                "variant": "b",
                "is_control": False,
                "p_value_holm": nan,
                "sequential_ci_low": nan,
                "decision_ci_low": -0.1249,
                "decision_ci_high": 0.1982,
                "decision_basis": "non_inferiority",
                "decided_on": None,
                "note": "a long sentence " * 20,
            },
        ]
    )
    table = metrics_table(results)
    assert table["decision CI"].tolist() == ["-0.0010 to 0.0213", "-12.49% to 19.82% (lift)"]
    assert table["decided on"].tolist() == ["2026-01-19", None]
    styler, config = styled_metrics(table)
    shown = styler.to_string()
    assert "None" not in shown and "nan" not in shown.lower()
    lines = shown.splitlines()
    assert "2.00%" in lines[1] and "90.00%" in lines[1] and "0.0123" in lines[1] and "-5.00%" in lines[1]
    assert lines[2].count(NOT_DEFINED) >= 2
    # What the browser gets: Streamlit's grid draws a missing number as "None" whatever the Styler says (a trial's
    # screenshots), so a column with a gap holds the text itself, right-aligned; complete columns stay numbers.
    data = styler.data
    assert data["p (Holm)"].tolist() == ["0.0123", NOT_DEFINED]
    assert data["always-valid CI low"].tolist() == ["-5.00%", NOT_DEFINED]
    assert data["decided on"].tolist() == ["2026-01-19", NOT_DEFINED]
    assert data["value"].dtype.kind == "f"
    assert not data.drop(columns=["role", "decision"]).isna().any().any()  # those two are not in this hand-made set
    assert {"p (Holm)", "always-valid CI low"} <= set(config) and not {"value", "relative lift"} & set(config)
    assert metric_notes(results) == [("session_duration", "b", "a long sentence " * 20)]


def test_the_versions_table_shows_a_dash_where_a_baseline_has_no_value() -> None:
    """Found by a trial: the random baseline's AUC and log loss read as grey "None" on the health page."""
    from app.lib.health import styled_versions
    from app.lib.ui import NOT_DEFINED

    versions = pd.DataFrame(
        [
            {"version": 1, "model": "ranker", "aliases": "champion", "auc": 0.712345, "log_loss": 0.4},
            {"version": 1, "model": "random", "aliases": "", "auc": None, "log_loss": float("nan")},
        ]
    )
    styler, config = styled_versions(versions)
    lines = styler.to_string().splitlines()
    assert "0.7123" in lines[1] and "0.4000" in lines[1]
    assert lines[2].count(NOT_DEFINED) == 2 and "None" not in lines[2] and "nan" not in lines[2]
    assert styler.data["auc"].tolist() == ["0.7123", NOT_DEFINED] and set(config) == {"auc", "log_loss"}


def test_a_standing_label_whose_interval_now_holds_zero_gets_a_caveat_and_still_ships() -> None:
    """Found by a trial: "Ship: ctr is better for treatment" beside today's interval on the lift holding 0 read as
    stronger evidence than there is. The label stands (docs/experiments.md, Decisions, rule 4); a caveat says so."""
    from app.lib.experiments import ExperimentStatus, advice

    def row(metric: str, low: float, high: float, win: float) -> dict[str, object]:
        return {
            "metric": metric, "variant": "treatment", "is_control": False, "metric_role": "primary",
            "decision": "better", "decided_on": "2026-01-20", "chance_to_win": win, "novelty_fading": None,
            "relative_lift": (low + high) / 2, "absolute_effect": 0.01, "relative_ci_low": low,
            "relative_ci_high": high,
        }  # fmt: skip

    status = ExperimentStatus("e", "", "control", {"control": 900, "treatment": 900}, 1000, False, 0.5, False, {})
    results = pd.DataFrame([row("ctr", -0.041, 0.145, 0.95), row("dwell", 0.02, 0.09, 0.99)])
    said = advice(status, results)
    assert said.headline.startswith("Ship: ctr is better for treatment (+5.2%); dwell is better")
    weaker = [c for c in said.caveats if c.startswith("Weaker since decided")]
    assert weaker == [
        "Weaker since decided: ctr (treatment) was decided better on 2026-01-20, but today's 95% interval on its "
        "lift [-4.1%, +14.5%] holds 0. The label stands (it was read with its error rate kept), yet the effect may "
        "be smaller than it looked then."
    ]
    # A label whose estimate reversed gets the reversal caveat alone, not both.
    flipped = advice(status, pd.DataFrame([row("ctr", -0.2, 0.01, 0.1)])).caveats
    assert [c[:26] for c in flipped if "since decided" in c] == ["Reversed since decided: ct"]


def test_a_rate_under_one_keeps_two_significant_digits() -> None:
    """Found by a trial: the power planner read "0 new users a day" for 0.15 a day, beside 70,940 days."""
    assert [rate(v) for v in (0.15, 0.0, 3.456, 12.4, 1234.5, None, float("nan"))] == [
        "0.15", "0", "3.5", "12", "1,234", "-", "-"
    ]  # fmt: skip
