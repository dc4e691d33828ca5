"""Every page of the analyst app through Streamlit's AppTest on a small built history.

What analysts rely on: the numbers on each page are the warehouse's numbers (read here from the DuckDB file the
run built, which the app never opens), the app keeps working while a run holds the warehouse, a new run's marts
replace what the caches hold, an empty home says to run `make demo` on every page, and whatever is typed into
the user box is an id looked up as a parameter, never SQL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from app.lib import experiments as experiments_lib
from app.lib import health as health_lib
from app.lib import marts
from app.lib import preview as preview_lib
from app.lib.ui import NOT_DEFINED, PAGES
from ml.recommend.serving import holdout_arm
from ml.registry import CHAMPION, Registry
from tailor.contract import MAX_ID_LENGTH
from tailor.settings import Settings, get_settings
from tests.app.conftest import NEWEST_COMPLETE_DAY, page_test, shown_metrics, table
from tests.conftest import copy_home, query_warehouse

pytestmark = pytest.mark.integration


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _latest_day(settings: Settings) -> dict[str, float]:
    """The newest complete day's KPIs computed from the warehouse (not the Parquet the app reads)."""
    [(active, impressions, clicks, converted, revenue)] = query_warehouse(
        settings,
        "select count(*), sum(impressions), sum(clicks), count(*) filter (where conversions > 0), sum(revenue_usd) "
        f"from marts.fct_daily_user_engagement where activity_date = {NEWEST_COMPLETE_DAY}",
    )
    return {"active": active, "ctr": clicks / impressions, "conversion": converted / active, "revenue": revenue}


def test_overview_shows_the_warehouses_kpis(app_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page_test("overview", app_home.home, monkeypatch).run()
    assert not at.exception, at.exception
    shown = shown_metrics(at)
    day = _latest_day(app_home)
    assert shown["Active users (latest day)"] == _num(day["active"])
    assert shown["CTR (latest day)"] == _pct(day["ctr"])
    assert shown["Conversion rate (latest day)"] == _pct(day["conversion"])
    assert shown["Revenue USD (latest day)"] == _num(day["revenue"])
    [(received, quarantined)] = query_warehouse(
        app_home, "select sum(received), sum(quarantined) from marts.fct_batch_fates"
    )
    assert shown["Event rows received"] == _num(received)
    assert shown["Quarantined"] == _num(quarantined)
    [share] = [m for m in at.metric if m.label == "Quarantined"]
    assert share.proto.delta.endswith("of received") and share.proto.direction == share.proto.NONE, "a share, no arrow"
    assert quarantined > 0, "the simulator plants malformed rows: the quarantine cannot be empty"
    assert "SUCCESS" in " ".join(m.value for m in at.markdown), "the last pipeline run is shown"


def test_experiments_page_shows_each_experiments_numbers(app_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page_test("experiments", app_home.home, monkeypatch).run()
    assert not at.exception, at.exception
    listed = table(at, "experiment", "SRM")
    ids = [
        r[0] for r in query_warehouse(app_home, "select distinct experiment_id from marts.dim_experiments order by 1")
    ]
    assert sorted(listed["experiment"]) == ids
    results = pd.read_parquet(app_home.marts_dir / "experiment_results.parquet")
    analysed = set(pd.read_parquet(app_home.marts_dir / "experiment_results.parquet")["experiment_id"])
    for experiment_id in ids:
        at.selectbox(key="experiment").select(experiment_id).run()
        assert not at.exception, at.exception
        if experiment_id not in analysed:  # registered, nobody exposed yet (the holdout before pages are served)
            assert any("No units exposed" in i.value for i in at.info), experiment_id
            continue
        shown = shown_metrics(at)
        units = query_warehouse(
            app_home,
            "select variant, is_control, units_analysed from marts.dim_experiments "
            f"where experiment_id = '{experiment_id}' and weight is not null",  # a fixed id from the warehouse
        )
        for variant, is_control, count in units:
            assert shown[f"Units: {variant}" + (" (control)" if is_control else "")] == _num(count)
        shown_table = table(at, "metric", "absolute lift")
        assert not shown_table[["p (Holm)", "q (BH)", "relative lift"]].isna().any().any()  # "None" in the grid
        # Each variant's metric value is the warehouse's sufficient statistics: sum / n, or sum / denominator.
        stats = query_warehouse(
            app_home,
            "select metric, variant, sum / coalesce(denominator_sum, n) from marts.fct_experiment_stats "
            f"where experiment_id = '{experiment_id}'",
        )
        by_key = shown_table.set_index(["metric", "variant"])
        # One row per metric x treatment, the control's units and value beside it: no row of empty cells.
        control = {variant for variant, is_control, _ in units if is_control}
        assert not set(shown_table["variant"]) & control
        for metric, variant, value in stats:
            if variant in control:
                beside = shown_table.loc[shown_table["metric"] == metric, "control value"]
                assert len(beside) and beside.tolist() == pytest.approx([value] * len(beside), rel=1e-9), metric
            else:
                assert by_key.loc[(metric, variant), "value"] == pytest.approx(value, rel=1e-9), (metric, variant)
        control_units = {variant: count for variant, is_control, count in units if is_control}
        assert set(shown_table["control units"]) == set(control_units.values())
        # ...and the comparisons are the run's results, row for row.
        mine = results.loc[(results["experiment_id"] == experiment_id) & ~results["is_control"]]
        # CUPED-adjusted lifts are said to be so under the table, and only then (a trial read the values'
        # difference against the adjusted lift as a mistake).
        adjusted = sorted(set(mine.loc[mine["cuped_applied"].eq(True), "metric"]))
        cuped = [c.value for c in at.caption if c.value.startswith("CUPED (")]
        assert len(cuped) == (1 if adjusted else 0), (experiment_id, cuped)
        if adjusted:
            assert all(metric in cuped[0] for metric in adjusted) and "even in sign" in cuped[0]
        mine = mine.set_index(["metric", "variant"])
        assert len(shown_table) == len(mine)
        for column, label in (
            ("absolute_effect", "absolute lift"),
            ("p_value_holm", "p (Holm)"),
            ("decision", "decision"),
        ):
            expected = mine[column].reindex(by_key.index)
            got = by_key[label]
            if got.dtype == object and expected.dtype.kind == "f":
                # A number column with an undefined cell is sent as its text (app.lib.ui.formatted_table): "None"
                # is what Streamlit's grid draws for a missing number.
                expected = expected.map(lambda v: NOT_DEFINED if pd.isna(v) else f"{v:,.4f}")
            assert ((expected == got) | (expected.isna() & got.isna())).all(), (experiment_id, column)
        # Why the decision: the interval it was read from (a trial), in its own units (a guardrail's on the lift).
        for (metric, variant), row in mine.iterrows():
            low, high, shown_ci = (
                row["decision_ci_low"],
                row["decision_ci_high"],
                by_key.loc[(metric, variant), "decision CI"],
            )
            if pd.isna(low):
                assert shown_ci == NOT_DEFINED, (metric, variant)
            elif row["decision_basis"] == "non_inferiority":
                assert shown_ci == f"{low:.2%} to {high:.2%} (lift)", (metric, variant)
            else:
                assert shown_ci == f"{low:.4f} to {high:.4f}", (metric, variant)
            assert by_key.loc[(metric, variant), "decided on"] == (
                NOT_DEFINED if pd.isna(row["decided_on"]) else str(row["decided_on"])[:10]
            )
        # Notes are shown whole, under the table (a cell cut them off).
        for metric, variant, note in zip(
            mine.index.get_level_values(0), mine.index.get_level_values(1), mine["note"], strict=True
        ):
            if isinstance(note, str) and note:
                assert any(note in w.value and metric in w.value for w in at.warning), (metric, variant)


def test_the_preview_shows_the_users_numbers_and_both_pages(
    app_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = pd.read_parquet(app_home.marts_dir / "batch_recommendations.parquet")
    personalized = str(pages.loc[pages["policy"] == "personalized", "user_id"].iloc[0])
    holdout = str(pages.loc[pages["policy"] == "holdout", "user_id"].iloc[0])
    at = page_test("preview", app_home.home, monkeypatch).run()
    assert not at.exception, at.exception
    # The picker starts on the most active user outside the holdout: a first look shows two different pages.
    users = [str(u) for u in at.selectbox(key="picked_user").options]
    default = str(at.selectbox(key="picked_user").value)
    assert holdout_arm(default) == "personalized"
    assert all(holdout_arm(u) == "holdout" for u in users[: users.index(default)])
    at.text_input(key="typed_user").input(personalized).run()
    assert not at.exception, at.exception
    shown = shown_metrics(at)
    [(impressions, clicks)] = query_warehouse(
        app_home,
        f"select sum(impressions), sum(clicks) from marts.fct_daily_user_engagement where user_id = '{personalized}'",
    )
    assert shown["Impressions"] == _num(impressions) and shown["Clicks"] == _num(clicks)
    assert shown["CTR"] == _pct(clicks / impressions)
    page = table(at, "slot_kind")
    control = table(at, "slot_kind", nth=1)
    assert page["rank"].tolist() == list(range(1, 11)) and control["rank"].tolist() == list(range(1, 11))
    assert "personalized" in set(page["slot_kind"]), "a personalized user's page has model slots"
    assert set(control["slot_kind"]) <= {"popular", "editorial"}, "the control page never has model slots"
    consumed = {r[0] for r in query_warehouse(
        app_home, f"select content_id from marts.fct_user_content_interactions where user_id = '{personalized}'"
    )}  # fmt: skip
    assert not (set(page["content_id"]) | set(control["content_id"])) & consumed, "a consumed item came back"
    assert "Served by **model**" in " ".join(m.value for m in at.markdown)

    # Online features: the newest daily row of the warehouse's user features, as the store serves it.
    features = table(at, "feature", "value").set_index("feature")["value"]
    [(impressions_7d, clicks_28d)] = query_warehouse(
        app_home,
        "select impressions_7d, clicks_28d from marts.fct_user_features_daily "
        f"where user_id = '{personalized}' order by event_timestamp desc limit 1",
    )
    assert features["impressions_7d"] == str(impressions_7d) and features["clicks_28d"] == str(clicks_28d)

    # The truth toggle: true click probabilities next to the predicted ones, in [0, 1] for every slot.
    at.toggle(key="truth").set_value(True).run()
    assert not at.exception, at.exception
    truth = table(at, "slot_kind")
    assert truth["true_p_click_top"].between(0, 1).all() and truth["true_p_click_here"].between(0, 1).all()
    assert (truth["true_p_click_here"] <= truth["true_p_click_top"] + 1e-12).all(), "examination is at most 1"

    at.text_input(key="typed_user").input(holdout).run()
    assert not at.exception, at.exception
    assert any("personalization holdout" in i.value for i in at.info)
    same = table(at, "slot_kind")
    assert same["content_id"].tolist() == table(at, "slot_kind", nth=1)["content_id"].tolist()


def test_health_shows_the_registrys_champion(app_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page_test("health", app_home.home, monkeypatch).run()
    assert not at.exception, at.exception
    champion = Registry(app_home.models_dir).alias(CHAMPION)
    assert champion is not None
    shown = shown_metrics(at)
    assert shown["Champion"] == f"v{champion.version}"
    assert shown["Champion AUC"] == f"{champion.metrics['classification.ranker.auc']:.4f}"
    assert shown["Champion log loss"] == f"{champion.metrics['classification.ranker.log_loss']:.4f}"
    ndcg = champion.metrics["ranking.ranker.ndcg_at_k"]
    assert shown["Champion NDCG@k vs logged clicks"] == f"{ndcg:.4f}"
    assert any("favours popularity by construction" in c.value for c in at.caption)
    versions = table(at, "version", "aliases", "model")
    # The aliases are the registered ranker's: its baselines' rows (same test window) do not repeat them.
    assert "champion" in versions.loc[versions["model"] == "ranker", "aliases"].str.cat(sep=",")
    assert (versions.loc[versions["model"] != "ranker", "aliases"] == "").all()
    # No missing number reaches the grid, which would draw it as "None" (a trial's screenshot): the dash instead.
    metrics = versions[[m for m in health_lib.METRICS if m in versions]]
    assert not metrics.isna().any().any() and (metrics == NOT_DEFINED).any().any(), "random has no AUC: a dash"
    drift_said = " ".join(e.value for e in [*at.success, *at.warning, *at.error])
    before_it = any(f"ran before champion v{champion.version} was trained" in c.value for c in at.caption)
    assert before_it == ("no champion yet" in drift_said), "a drift check that saw no champion says why, and only then"
    assert before_it, "the served home had one run: its drift checks ran before its ranker was trained"
    checks = table(at, "check", "result")
    assert len(checks) > 10 and int(shown["Checks evaluated"]) == len(checks)
    # The run counts the drift checks too (`tailor run --json`'s checks_evaluated): the figure says so (a trial).
    [counted] = [m for m in at.metric if m.label == "Checks evaluated"]
    assert f"Besides the 2 drift checks above: {len(checks) + 2} in all" in counted.proto.help
    reasons = table(at, "reject_reason", "rows")
    [(quarantined,)] = query_warehouse(app_home, "select count(*) from marts.fct_rejected_rows")
    assert reasons["rows"].sum() == quarantined


def test_pages_render_while_a_run_holds_the_warehouse(
    app_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB allows one writer per file, and while it writes no other process may open the file, even read-only
    (what dbt does to the warehouse during a run). Hold it that way from another process: every page still renders
    its numbers, because the app reads only published files. (On a copy: the shared home's warehouse is read by
    other tests meanwhile.)"""
    app_home = copy_home(app_home, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WAREHOUSE, str(app_home.warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(app_home.warehouse), read_only=True)  # the lock is real
        for slug in PAGES:
            at = page_test(slug, app_home.home, monkeypatch).run()
            assert not at.exception, (slug, at.exception)
            assert not any("make demo" in i.value for i in at.info), slug
            assert at.metric, f"{slug} shows no numbers while the warehouse is held"
    finally:
        holder.communicate("", timeout=60)  # closing stdin ends the holder; its transaction is rolled back
    assert holder.returncode == 0


#: A writer in its own process: opens the warehouse read-write, starts writing, and holds it until stdin closes.
_HOLD_WAREHOUSE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("begin transaction")
con.execute("create table marts._app_test_writer as select 1 as x")
print("holding", flush=True)
sys.stdin.read()
con.execute("rollback")
con.close()
"""


def test_a_new_run_replaces_what_the_cache_holds(
    app_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caches are keyed on the marts' modification times: republishing a mart shows the new numbers."""
    home = tmp_path / "copy"
    shutil.copytree(app_home.marts_dir, home / "marts")
    settings = get_settings(home)
    before = shown_metrics(page_test("overview", home, monkeypatch).run())
    engagement = home / "marts" / "fct_daily_user_engagement.parquet"
    frame = pd.read_parquet(engagement)
    newest = frame["activity_date"].max()
    fewer = frame.drop(frame.index[frame["activity_date"] == newest][:5])
    fewer.to_parquet(engagement.with_suffix(".tmp"))
    engagement.with_suffix(".tmp").replace(engagement)  # a run replaces a file whole
    after = shown_metrics(page_test("overview", home, monkeypatch).run())
    assert int(before["Active users (latest day)"].replace(",", "")) - 5 == int(
        after["Active users (latest day)"].replace(",", "")
    )
    assert marts.stamp(settings, ["fct_daily_user_engagement"])[0][1] == engagement.stat().st_mtime_ns


def test_the_overview_caption_says_the_partial_days_newest_event_and_what_its_day_count_counts(
    app_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a trial: '2026-11-30: partial (events up to 23:00 UTC only)' whose newest event was at 12:00 (the
    hour was the completeness rule's, written in), and '29 days since 2026-01-05' under a chart spanning January to
    November (29 counted the days with events). Here: the history's second half moved 100 days later (a gap), and
    a partial day after it whose newest event is at 12:00."""
    home = tmp_path / "copy"
    shutil.copytree(app_home.marts_dir, home / "marts")
    engagement_path = home / "marts" / "fct_daily_user_engagement.parquet"
    sessions_path = home / "marts" / "fct_sessions.parquet"
    engagement, sessions = pd.read_parquet(engagement_path), pd.read_parquet(sessions_path)
    days = sorted(engagement["activity_date"].unique())
    first, middle = pd.Timestamp(days[0]), pd.Timestamp(days[len(days) // 2])
    gap = pd.Timedelta(days=100)
    later = pd.to_datetime(engagement["activity_date"]) >= middle
    engagement.loc[later, "activity_date"] = (pd.to_datetime(engagement.loc[later, "activity_date"]) + gap).dt.date
    engagement.loc[later, "last_event_at"] = engagement.loc[later, "last_event_at"] + gap
    moved = pd.to_datetime(sessions["session_date"]) >= middle
    sessions.loc[moved, "session_date"] = (pd.to_datetime(sessions.loc[moved, "session_date"]) + gap).dt.date
    newest = pd.Timestamp(engagement["activity_date"].max())
    partial_day = newest + pd.Timedelta(days=1)
    extra = engagement[pd.to_datetime(engagement["activity_date"]) == newest].head(3).copy()
    extra["activity_date"] = partial_day.date()
    extra["last_event_at"] = [partial_day + pd.Timedelta(hours=h) for h in (9, 12, 11)][: len(extra)]
    engagement = pd.concat([engagement[pd.to_datetime(engagement["activity_date"]) < partial_day], extra])
    engagement.to_parquet(engagement_path)
    sessions[pd.to_datetime(sessions["session_date"]) <= partial_day].to_parquet(sessions_path)

    at = page_test("overview", home, monkeypatch).run()
    assert not at.exception, at.exception
    [caption] = [c.value for c in at.caption if c.value.startswith("Each point is one UTC day")]
    with_events = engagement["activity_date"].nunique()
    calendar = (partial_day - first).days + 1
    assert (
        f"{with_events} days with events from {first:%Y-%m-%d} to {partial_day:%Y-%m-%d} ({calendar} calendar days, "
        f"{calendar - with_events} of them without events)" in caption
    )
    assert caption.endswith(f" {partial_day:%Y-%m-%d}: partial (events up to 12:00 UTC only), not plotted.")
    assert "23:00" not in caption
    # The partial day is not a point of the chart: drawn, it read as a collapse of every KPI (a trial).
    kpis = at.get("plotly_chart")[0]  # the KPI lines come first on the page
    assert partial_day.strftime("%Y-%m-%d") not in kpis.proto.spec, "the partial day is plotted"
    assert pd.Timestamp(days[0]).strftime("%Y-%m-%d") in kpis.proto.spec
    newest_by_day = engagement.groupby("activity_date")["last_event_at"].max()
    starts = pd.to_datetime(pd.Series(newest_by_day.index)).to_numpy()
    complete = list(newest_by_day.index[newest_by_day.to_numpy() >= starts + np.timedelta64(23, "h")])
    before = max(d for d in engagement["activity_date"] if d < complete[-1])  # the row before, complete or not
    which = "the day before" if before == complete[-1] - pd.Timedelta(days=1) else "the day before it with events"
    assert f"Tiles: {complete[-1]:%Y-%m-%d}, the newest complete day, against {before:%Y-%m-%d}, {which};" in caption

    # Without any event on the days before the newest complete day, its tiles compare with an earlier day: said so.
    dropped = engagement[engagement["activity_date"] < complete[-1]]
    gone = sorted(dropped["activity_date"].unique())[-2:]
    engagement[~engagement["activity_date"].isin(gone)].to_parquet(engagement_path)
    sessions[
        ~sessions["session_date"].isin(gone) & (pd.to_datetime(sessions["session_date"]) <= partial_day)
    ].to_parquet(sessions_path)
    again = page_test("overview", home, monkeypatch).run()
    [caption] = [c.value for c in again.caption if c.value.startswith("Each point is one UTC day")]
    earlier = sorted(dropped["activity_date"].unique())[-3]
    assert f"against {earlier:%Y-%m-%d}, the day before it with events;" in caption


def test_every_page_says_make_demo_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for slug in PAGES:
        at = page_test(slug, tmp_path / "empty", monkeypatch).run()
        assert not at.exception, (slug, at.exception)
        assert any("make demo" in i.value for i in at.info), (slug, [i.value for i in at.info])
        assert not at.metric and not at.dataframe, f"{slug} shows numbers without data"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("u9999999", "No user `u9999999` in the published history"),
        ("x' or '1'='1", "No user `x' or '1'='1` in the published history"),
        # A code span: Markdown shows it as typed (the trial saw "--" turned into a dash).
        ("u1'; drop table dim_users; --", "No user `u1'; drop table dim_users; --` in"),
    ],
)
def test_bad_user_input_gets_a_friendly_message(
    app_home: Settings, monkeypatch: pytest.MonkeyPatch, typed: str, message: str
) -> None:
    at = page_test("preview", app_home.home, monkeypatch).run()
    at.text_input(key="typed_user").input(typed).run()
    assert not at.exception, at.exception
    assert any(message in w.value for w in at.warning), [w.value for w in at.warning]
    page = table(at, "slot_kind")  # an unknown user gets the cold-start page, never an empty one
    assert len(page) == 10 and set(page["slot_kind"]) <= {"popular", "editorial"}
    # The text was a value, not SQL: every user is still there.
    [(users,)] = query_warehouse(app_home, "select count(*) from marts.dim_users")
    assert len(pd.read_parquet(app_home.marts_dir / "dim_users.parquet")) == users


def test_the_id_box_takes_no_more_than_an_id_can_hold(app_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """It took 200 characters, then refused anything over 128 (found by a trial): it now stops at 128."""
    at = page_test("preview", app_home.home, monkeypatch).run()
    assert at.text_input(key="typed_user").proto.max_chars == MAX_ID_LENGTH == 128
    with pytest.raises(preview_lib.BadUserId, match="ids have at most 128"):
        preview_lib.checked_user_id("u" * 129)
    with pytest.raises(preview_lib.BadUserId, match=r"control character \(U\+0001 at character 2\)"):
        preview_lib.checked_user_id("u\x01x")


def test_a_blank_typed_id_says_it_shows_the_picked_user(app_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page_test("preview", app_home.home, monkeypatch).run()
    picked = at.selectbox(key="picked_user").value
    at.text_input(key="typed_user").input(" \t ").run()
    assert not at.exception, at.exception
    assert any("blank" in i.value and "picked user" in i.value for i in at.info), [i.value for i in at.info]
    assert any(f"Preview of **`{picked}`**" in m.value for m in at.markdown), "the picked user's page is shown"


def test_an_unknown_experiment_id_is_a_clear_error(app_home: Settings) -> None:
    with pytest.raises(LookupError, match="no experiment \"x' or '1'='1\" in the results; there are: exp_"):
        experiments_lib.results_for(app_home, "x' or '1'='1")


def test_drift_draws_what_moved_and_says_when_nothing_did(
    app_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two drift evaluations as the orchestration layer publishes them (run_summary.json): one where a feature
    moved (a chart, its young feature named, not drawn), one where every excess is 0 (said in words: all bars at 0
    read as a chart that failed to render, a trial); both with their PSI table."""
    home = copy_home(app_home, tmp_path)
    summary = json.loads(home.run_summary.read_text())

    def check(name: str, passed: bool, rows: list[tuple[str, str, float, float]]) -> dict[str, object]:
        table = [
            {"feature": f, "status": st, "psi": p, "excess_psi": e, "day_baseline_psi": 0.01, "noise_psi": 0.02}
            for f, st, p, e in rows
        ]
        metadata = {"psi": table, "warn_threshold": 0.1, "fail_threshold": 0.25, "champion_version": 1}
        return {"asset": "ml/ranking_training_set", "check": name, "passed": passed, "severity": "ERROR",
                "description": "planted", "evaluated_at": 1.0, "run_id": "r", "metadata": metadata}  # fmt: skip

    summary["checks"] = [
        check("champion_features_stable", False, [("moved", "fail", 0.4, 0.31), ("young_one", "young", 0.9, 0.0)]),
        check("champion_predictions_stable", True, [("predicted_click", "ok", 3.2, 0.0)]),
    ]
    home.run_summary.write_text(json.dumps(summary))
    at = page_test("health", home.home, monkeypatch).run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Not judged, so not drawn (a window longer than the history before the reference): young_one." in captions
    assert captions.count("Every judged feature's excess is 0") == 1
    assert table(at, "feature", "excess_psi")["feature"].tolist() == ["moved", "young_one"]
    assert table(at, "feature", "excess_psi", nth=1)["feature"].tolist() == ["predicted_click"]
    assert len(at.get("plotly_chart")) == 2, "the models' chart and the one drift chart with something to draw"
