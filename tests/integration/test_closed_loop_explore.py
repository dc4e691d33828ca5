"""Off-policy estimates from the explore slots a continued simulation served, with the pools logged as the batch
pages log them (`ml.recommend.rules` draws, `explore_pool` carries the action set), valued by the truth.

No warehouse: the pages are assembled here by the real page rules (an explore slot over the freshest items, the
rest popular) and served by the real simulator to its users, whose clicks come from the true click model; the
test checks that `evaluation.closed_loop` joins each explore slot to the impressions that showed it and values
every pool item exactly as the simulator drew the clicks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.closed_loop import explore_decisions, explore_estimates
from evaluation.ranking_truth import TruthClickModel
from ml.recommend.rules import PageRules, Ranked, assemble_page
from simulator import SimulationConfig, continue_simulation, simulate
from tailor.assignment import assign_variant

pytestmark = pytest.mark.integration

CONFIG = SimulationConfig(users=300, days=4, seed=21)
RULES = PageRules(explore_pool=8, explore_position=2)


def _pages(generated: Path) -> pd.DataFrame:
    """One page per user and surface: the explore slot at position 2, popular items (here: by content id) after;
    the personalization holdout's users (the registered hash) get the popular page, without exploration."""
    truth = generated / "_truth"
    users = pq.read_table(truth / "users.parquet", columns=["user_id"]).to_pandas()["user_id"].tolist()
    content = pq.read_table(truth / "content.parquet", columns=["content_id", "category", "published_at"]).to_pandas()
    served_from = datetime.combine(CONFIG.start_date, datetime.min.time(), UTC) + timedelta(days=CONFIG.days)
    out = content.loc[pd.to_datetime(content["published_at"], utc=True) < served_from]
    newest = out.sort_values(["published_at", "content_id"], ascending=[False, True])["content_id"].tolist()
    popular = sorted(out["content_id"])
    category = dict(zip(content["content_id"], content["category"], strict=True))
    rows = []
    for n, user in enumerate(users):
        variant = assign_variant("personalization_holdout", user, ["holdout", "personalized"], [0.1, 0.9])
        for surface in CONFIG.surfaces:
            items = assemble_page(
                10,
                Ranked([], []),
                Ranked(popular, [0.0] * len(popular)),
                Ranked(newest, [0.0] * len(newest)),
                Ranked([], []),
                set(),
                category,
                RULES,
                np.random.default_rng([n, len(surface)]),
                {kind: (lambda item, cat: "test") for kind in ("personalized", "explore", "popular", "editorial")},
                holdout=variant == "holdout",
            )
            rows += [
                {
                    "user_id": user,
                    "surface": surface,
                    "rank": item.rank,
                    "content_id": item.content_id,
                    "slot_kind": item.slot_kind,
                    "propensity": item.propensity,
                    "policy": variant,
                    "variant": variant,
                    "model_version": "" if variant == "holdout" else "test",
                    "explore_pool": None if item.explore_pool is None else list(item.explore_pool),
                }
                for item in items
            ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, Path]]:
    generated = tmp_path_factory.mktemp("explore") / "generated"
    simulate(CONFIG, generated)
    pages = _pages(generated)
    continue_simulation(generated, 2, pages=pa.Table.from_pandas(pages, preserve_index=False))
    paths = sorted((generated / "_truth" / "continued").glob("impressions-*.parquet"))
    yield pages, pd.concat([pq.read_table(p).to_pandas() for p in paths]), generated


def test_every_explore_slot_logs_its_pool(served: tuple[pd.DataFrame, pd.DataFrame, Path]) -> None:
    pages = served[0]
    explore = pages.loc[pages["slot_kind"] == "explore"]
    personalized = pages.loc[pages["policy"] == "personalized"]
    assert len(explore) == personalized.groupby(["user_id", "surface"]).ngroups  # one per personalized page
    assert (explore["rank"] == RULES.explore_position).all()
    for item, propensity, pool in zip(
        explore["content_id"], explore["propensity"], explore["explore_pool"], strict=True
    ):
        assert item in pool and len(pool) == RULES.explore_pool and propensity == pytest.approx(1 / len(pool))
    assert pages.loc[pages["slot_kind"] != "explore", "explore_pool"].isna().all()


def test_the_truth_values_each_pool_item_as_the_simulator_drew_the_clicks(
    served: tuple[pd.DataFrame, pd.DataFrame, Path],
) -> None:
    pages, impressions, generated = served
    decisions = explore_decisions(pages, impressions, TruthClickModel.from_folder(generated))
    frame = decisions.frame
    assert decisions.pages_with_explore == len(pages.loc[pages["slot_kind"] == "explore"])
    assert 100 < len(frame) <= decisions.pages_with_explore
    # The logged item's value is the simulator's own p_click on every explore impression.
    assert decisions.max_p_click_error < 1e-12
    shown = impressions.loc[(impressions["position"] == RULES.explore_position) & (impressions["policy"] != "holdout")]
    assert frame["impressions"].sum() == len(shown) and frame["clicks"].sum() == shown["clicked"].sum()
    assert [p[i] for p, i in zip(frame["pool"], frame["logged"], strict=True)] == frame["content_id"].tolist()

    rewards = frame["reward"].to_numpy()
    propensity, logged = frame["propensity"].to_numpy(), frame["logged"].to_numpy()
    uniform = [np.full(len(v), 1 / len(v)) for v in decisions.values]
    logging = explore_estimates(rewards, propensity, logged, uniform, decisions.values)
    assert logging["ips"]["value"] == pytest.approx(rewards.mean(), abs=1e-12)
    # The truth of the uniform policy is the mean value of its pool; the observed rate estimates it.
    assert abs(logging["ips"]["error"]) < 4 * logging["ips"]["se"]
    best = [np.eye(len(v))[int(np.argmax(v))] for v in decisions.values]
    greedy = explore_estimates(rewards, propensity, logged, best, decisions.values)
    assert greedy["truth"] > logging["truth"]
    for name in ("ips", "snips"):
        assert abs(greedy[name]["error"]) < 4 * greedy[name]["se"], name


def test_pages_without_their_pools_are_refused(served: tuple[pd.DataFrame, pd.DataFrame, Path]) -> None:
    pages, impressions, generated = served
    model = TruthClickModel.from_folder(generated)
    with pytest.raises(ValueError, match="no explore_pool column"):
        explore_decisions(pages.drop(columns="explore_pool"), impressions, model)
    wrong = pages.copy()
    at = wrong.index[wrong["slot_kind"] == "explore"][0]
    logged = wrong.at[at, "content_id"]
    wrong.at[at, "explore_pool"] = [c for c in wrong.at[at, "explore_pool"] if c != logged] + ["c0000001"]
    with pytest.raises(ValueError, match=f"its pool .* must hold '{logged}'"):
        explore_decisions(wrong, impressions, model)
    unknown = pages.copy()
    unknown.at[at, "explore_pool"] = [c if c == logged else "c9999999" for c in unknown.at[at, "explore_pool"]]
    with pytest.raises(ValueError, match=r"c9999999.*not in the simulation"):
        explore_decisions(unknown, impressions, model)
