"""The experiment marts on a simulated history: exposures match the simulator's truth, and every sufficient
statistic equals an independent pandas computation of the documented metric definitions from the event marts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.experiments.analysis import analyze
from ml.experiments.results import load_marts
from simulator import SimulationConfig, simulate
from tailor.ingest import ingest_paths
from tailor.settings import DBT_PROJECT_DIR, Settings, get_settings
from tests.conftest import run_dbt

pytestmark = pytest.mark.integration

PRE_DAYS = 14


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("experiments")
    generated = root / "generated"
    simulate(SimulationConfig(users=400, days=14, seed=11), generated)
    settings = get_settings(root / "home")
    ingest_paths([generated], settings)
    run_dbt(settings, "build")
    yield settings, json.loads((generated / "_truth" / "truth.json").read_text())


def _frame(settings: Settings, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def test_exposed_units_match_the_planted_assignment(built: tuple[Settings, dict[str, Any]]) -> None:
    settings, truth = built
    units = _frame(
        settings, "select experiment_id, variant, count(*) as n from marts.fct_experiment_units group by all"
    )
    got = {(r.experiment_id, r.variant): r.n for r in units.itertuples()}
    planted = {(e["experiment_id"], a["variant"]): a["users_exposed"] for e in truth["experiments"] for a in e["arms"]}
    assert got == {k: v for k, v in planted.items() if v}
    dims = _frame(settings, "select * from marts.dim_experiments")
    assert (dims["units_crossover"] == 0).all() and (dims["units_analysed"] == dims["units_exposed"]).all()
    # Registered but never served in this world (the simulator's logging policy has no holdout): no units.
    served = {e["experiment_id"] for e in truth["experiments"]}
    assert dims.loc[~dims["experiment_id"].isin(served), "units_exposed"].eq(0).all()
    planted = dims[dims["experiment_id"].isin(served)]
    assert set(planted.loc[planted["is_control"], "variant"]) == {"control"}


def _unit_values(settings: Settings) -> pd.DataFrame:
    """Per experiment and unit: each measure after first exposure and over the pre-period, from the event marts."""
    events = _frame(settings, "select * from marts.fct_events")
    impressions = _frame(settings, "select user_id, occurred_at, is_clicked from marts.fct_impressions")
    sessions = _frame(settings, "select user_id, session_start, session_end, duration_seconds from marts.fct_sessions")
    fx = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "fx_rates.csv").set_index("currency")["usd_per_unit"]
    exposures = events[events["event_type"] == "exposure"].sort_values(["occurred_at", "variant"])
    units = exposures.groupby(["experiment_id", "user_id"]).agg(
        first=("occurred_at", "min"), variant=("variant", "first"), variants=("variant", "nunique")
    )
    units = units[units["variants"] == 1].reset_index()
    conversions = events[events["event_type"] == "conversion"].assign(
        revenue=lambda e: e["value"] * e["currency"].map(fx)
    )
    views = events[events["event_type"] == "view"]
    rows = []
    for u in units.itertuples():
        start = u.first - pd.Timedelta(days=PRE_DAYS)
        values: dict[str, Any] = {"experiment_id": u.experiment_id, "user_id": u.user_id, "variant": u.variant}
        for period, lo, hi in (("post", u.first, None), ("pre", start, u.first)):

            def window(
                frame: pd.DataFrame, column: str, lo: Any = lo, hi: Any = hi, user: str = u.user_id
            ) -> pd.DataFrame:
                mine = frame[(frame["user_id"] == user) & (frame[column] >= lo)]
                return mine if hi is None else mine[mine[column] < hi]

            imps = window(impressions, "occurred_at")
            conv = window(conversions, "occurred_at")
            mine_sessions = sessions[sessions["user_id"] == u.user_id]
            if period == "post":
                sess = mine_sessions[mine_sessions["session_end"] >= u.first]
            else:
                sess = mine_sessions[(mine_sessions["session_end"] < u.first) & (mine_sessions["session_start"] >= lo)]
            prefix = "" if period == "post" else "pre_"
            values[prefix + "impressions"] = len(imps)
            values[prefix + "clicks"] = int(imps["is_clicked"].sum())
            values[prefix + "conversions"] = len(conv)
            values[prefix + "revenue_usd"] = float(conv["revenue"].sum())
            values[prefix + "dwell_seconds"] = float(window(views, "occurred_at")["dwell_seconds"].sum())
            values[prefix + "sessions"] = len(sess)
            values[prefix + "session_seconds"] = float(sess["duration_seconds"].sum())
        rows.append(values)
    return pd.DataFrame(rows)


METRICS = {  # metric: (m, d or None, proportion?)
    "ctr": ("clicks", "impressions", False),
    "conversion": ("conversions", None, True),
    "revenue_per_user": ("revenue_usd", None, False),
    "dwell_per_user": ("dwell_seconds", None, False),
    "session_duration": ("session_seconds", "sessions", False),
}


def test_sufficient_statistics_equal_a_pandas_computation(built: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = built
    units = _unit_values(settings)
    stats = pd.read_parquet(settings.marts_dir / "fct_experiment_stats.parquet")
    assert len(stats) == units.groupby(["experiment_id", "variant"]).ngroups * len(METRICS)
    for (experiment_id, variant), group in units.groupby(["experiment_id", "variant"]):
        for metric, (num, den, proportion) in METRICS.items():
            row = stats[(stats["experiment_id"] == experiment_id) & (stats["variant"] == variant)
                        & (stats["metric"] == metric)].iloc[0]  # fmt: skip
            m = (group[num] > 0).astype(float) if proportion else group[num].astype(float)
            x = (group["pre_" + num] > 0).astype(float) if proportion else group["pre_" + num].astype(float)
            expected = {
                "n": len(group),
                "sum": m.sum(),
                "sum_squares": (m * m).sum(),
                "covariate_sum": x.sum(),
                "covariate_sum_squares": (x * x).sum(),
                "main_covariate_sum_product": (m * x).sum(),
            }
            if den is not None:
                d, xd = group[den].astype(float), group["pre_" + den].astype(float)
                expected |= {
                    "denominator_sum": d.sum(),
                    "denominator_sum_squares": (d * d).sum(),
                    "main_denominator_sum_product": (m * d).sum(),
                    "covariate_denominator_sum": xd.sum(),
                    "main_covariate_denominator_sum_product": (m * xd).sum(),
                    "denominator_covariate_sum_product": (d * x).sum(),
                    "denominator_covariate_denominator_sum_product": (d * xd).sum(),
                    "covariate_covariate_denominator_sum_product": (x * xd).sum(),
                }
            else:
                assert pd.isna(row["denominator_sum"])
            for column, value in expected.items():
                assert row[column] == pytest.approx(value, rel=1e-9, abs=1e-6), (experiment_id, variant, metric, column)


def test_daily_and_novelty_stats_add_up(built: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = built
    stats = pd.read_parquet(settings.marts_dir / "fct_experiment_stats.parquet")
    daily = pd.read_parquet(settings.marts_dir / "fct_experiment_daily_stats.parquet")
    novelty = pd.read_parquet(settings.marts_dir / "fct_experiment_novelty_stats.parquet")
    keys = ["experiment_id", "variant", "metric"]
    last = daily[daily["as_of_date"] == daily["as_of_date"].max()].set_index(keys).sort_index()
    overall = stats.set_index(keys).sort_index()
    assert np.allclose(last["n"], overall["n"]) and np.allclose(last["sum"], overall["sum"])
    # Units only join over time, and running sums of counts never shrink.
    for _, path in daily.sort_values("as_of_date").groupby(keys):
        assert path["n"].is_monotonic_increasing
    # The day-by-day sums of a count metric add up to the whole post-exposure total.
    summed = novelty[novelty["metric"] == "ctr"].groupby(["experiment_id", "variant"])[["sum", "denominator_sum"]].sum()
    ctr = overall.xs("ctr", level="metric")[["sum", "denominator_sum"]]
    assert np.allclose(summed.sort_index(), ctr.sort_index())


def test_results_from_the_marts(built: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = built
    marts = load_marts(settings.marts_dir)
    results = analyze(marts.stats, marts.variants, marts.novelty)
    assert len(results) == len(marts.stats)  # one row per experiment x metric x variant
    treated = results[~results["is_control"]]
    assert treated["decision"].notna().all()
    assert (treated["relative_ci_low"] <= treated["relative_lift"]).all()
    assert (treated["sequential_ci_low"] <= treated["relative_ci_low"]).all()  # always-valid is wider
    assert treated["srm_p"].between(0, 1).all()


def test_analysed_units_are_the_stats_units(built: tuple[Settings, dict[str, Any]]) -> None:
    """Crossovers and unknown variants are left out of the stats (the dbt unit test
    test_crossover_and_unknown_variant_units_are_flagged covers the flags on fixed rows)."""
    settings, _ = built
    dims = _frame(
        settings,
        "select experiment_id, sum(units_analysed) as n from marts.dim_experiments"
        " group by 1 having sum(units_analysed) > 0",
    )
    stats = pd.read_parquet(settings.marts_dir / "fct_experiment_stats.parquet")
    per_experiment = stats[stats["metric"] == "ctr"].groupby("experiment_id")["n"].sum()
    assert dict(zip(dims["experiment_id"], dims["n"], strict=True)) == per_experiment.to_dict()
