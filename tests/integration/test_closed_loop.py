"""The closed loop through the real warehouse: simulate, build, serve pages to the simulated users, build again,
and check that the experiment engine measures the personalization holdout the truth planted.

The pages are a recommender with a known, large effect: each personalized user gets the items with the highest
true attract at the start of the served days (from the truth), the holdout the items clicked most over the last 7
days in the marts, minus what the user consumed. What the pipeline sees of the served days (impressions with their
policy, exposures, the experiment's units and its ctr) is compared with the closed-loop truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.closed_loop import ClosedLoopTruth
from evaluation.ranking_truth import TruthClickModel
from ml.experiments.analysis import analyze
from ml.experiments.results import load_marts
from simulator import SimulationConfig, continue_simulation, simulate
from tailor.assignment import assign_variant
from tailor.ingest import ingest_paths
from tailor.settings import Settings, get_settings
from tests.conftest import run_dbt

pytestmark = pytest.mark.integration

CONFIG = SimulationConfig(users=400, days=10, seed=13)
SERVED_FROM = pd.Timestamp("2026-01-15", tz="UTC")  # start_date + 10 days
SERVED_DAYS = 5


def _frame(settings: Settings, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def pages_from(settings: Settings, generated: Path) -> pa.Table:
    """One page per active user and surface (the batch recommendations' shape)."""
    active = _frame(settings, "select distinct user_id from marts.fct_impressions order by user_id")["user_id"]
    popular = _frame(
        settings,
        f"""
        select content_id, count(*) filter (where is_clicked) as clicks
        from marts.fct_impressions
        where occurred_at >= timestamp '{(SERVED_FROM - pd.Timedelta(days=7)).strftime("%Y-%m-%d")}'
        group by content_id order by clicks desc, content_id limit 200
        """,
    )["content_id"].tolist()
    consumed = _frame(settings, "select user_id, content_id from marts.fct_user_content_interactions")
    consumed_by = consumed.groupby("user_id")["content_id"].agg(set).to_dict()
    model = TruthClickModel.from_folder(generated)
    catalog = pq.read_table(generated / "_truth" / "content.parquet").to_pandas()
    available = catalog.loc[catalog["published_at"] < SERVED_FROM, "content_id"].to_numpy()
    rows: list[dict[str, Any]] = []
    for user_id in active:
        variant = assign_variant("personalization_holdout", user_id, ["holdout", "personalized"], [0.1, 0.9])
        if variant == "holdout":
            items = [c for c in popular if c not in consumed_by.get(user_id, set())][:10]
            kind, version = "popular", ""
        else:
            value = model.attract([user_id] * len(available), available, [SERVED_FROM] * len(available))
            items = list(available[np.argsort(-value, kind="stable")[:10]])
            kind, version = "personalized", "1"
        for surface in ("home", "feed"):
            for rank, content_id in enumerate(items, start=1):
                rows.append(
                    {
                        "user_id": user_id,
                        "surface": surface,
                        "rank": rank,
                        "content_id": content_id,
                        "score": 0.0,
                        "slot_kind": kind,
                        "reason": "test",
                        "propensity": 1.0,
                        "policy": variant,
                        "variant": variant,
                        "model_version": version,
                    }
                )
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def looped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    root = tmp_path_factory.mktemp("closed_loop")
    generated = root / "generated"
    simulate(CONFIG, generated)
    settings = get_settings(root / "home")
    ingest_paths([generated], settings)
    run_dbt(settings, "build")
    continue_simulation(generated, SERVED_DAYS, pages=pages_from(settings, generated))
    ingest_paths([generated], settings)  # files already landed are skipped: only the served days land
    run_dbt(settings, "build")
    yield settings, generated


def test_the_warehouse_holds_what_was_served(looped: tuple[Settings, Path]) -> None:
    settings, generated = looped
    truth = ClosedLoopTruth.from_folder(generated)
    served = truth.requests.loc[truth.requests["served_by"] == "cached"]
    logged = _frame(
        settings,
        "select policy, model_version, count(*) as n, min(propensity) as p from marts.fct_impressions "
        "where policy is not null group by all order by policy",
    )
    assert logged["n"].sum() == served["impressions"].sum()
    assert dict(zip(logged["policy"], logged["model_version"].fillna(""), strict=True)) == {
        "holdout": "",
        "personalized": "1",
    }
    assert (logged["p"] == 1.0).all()
    doc = json.loads((generated / "_truth" / "truth.json").read_text())
    assert _frame(settings, "select count(*) as n from marts.fct_events")["n"][0] == doc["counts_total"]["clean_events"]


def test_the_engine_measures_the_true_holdout_lift(looped: tuple[Settings, Path]) -> None:
    settings, generated = looped
    truth = ClosedLoopTruth.from_folder(generated)
    arms = truth.holdout_arms()
    units = _frame(
        settings,
        "select variant, count(*) as n from marts.fct_experiment_units "
        "where experiment_id = 'personalization_holdout' group by variant",
    )
    assert dict(zip(units["variant"], units["n"], strict=True)) == {v: a["users_exposed"] for v, a in arms.items()}
    marts = load_marts(settings.marts_dir)
    # Each arm's clicks and impressions after exposure are the truth's, to the click.
    stats = marts.stats.loc[
        (marts.stats["experiment_id"] == "personalization_holdout") & (marts.stats["metric"] == "ctr")
    ]
    for arm in stats.itertuples():
        assert (arm.sum, arm.denominator_sum) == (
            arms[arm.variant]["clicks_after_exposure"],
            arms[arm.variant]["impressions_after_exposure"],
        )
    results = analyze(marts.stats, marts.variants, marts.novelty)
    ctr = results.loc[(results["experiment_id"] == "personalization_holdout") & (results["metric"] == "ctr")]
    row = ctr.loc[ctr["variant"] == "personalized"].iloc[0]
    # The measured lift is significant and its interval covers the true lift (expected clicks, no click noise).
    assert truth.true_lift is not None and truth.true_lift > 0
    assert row["absolute_ci_low"] > 0
    assert row["absolute_ci_low"] <= truth.true_lift <= row["absolute_ci_high"]
    # On the same requests the truth ranks the pages as it should.
    personalized = truth.requests["page_policy"] == "personalized"
    assert (
        truth.true_ctr("oracle", personalized)
        >= truth.true_ctr("served", personalized)
        > truth.true_ctr("random", personalized)
    )
