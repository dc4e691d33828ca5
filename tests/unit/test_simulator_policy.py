"""Continued simulations and served pages (the closed loop): what the pipeline and the evaluation rely on.

A small history is simulated once per module; each test continues a copy of it. The pages served are built here
from the truth (popular pages for the holdout, each user's truly best items for the others), the events are read
back from the written files the way the pipeline would, and the truth's values are recomputed independently from
truth.json's formula and the truth tables.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cli.main import main
from evaluation.closed_loop import ClosedLoopTruth
from simulator import DriftConfig, SimulationConfig, simulate
from simulator.runner import continue_simulation
from simulator.serving import PagesError
from tailor.assignment import assign_variant

pytestmark = pytest.mark.unit

BASE = SimulationConfig(users=300, days=8)
FIRST_CONTINUED = pd.Timestamp("2026-01-13", tz="UTC")  # start_date + 8 days
HOLDOUT = ("holdout", "personalized")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base")
    simulate(BASE, out)
    return out


@pytest.fixture(scope="module")
def pages(base: Path) -> pa.Table:
    return build_pages(base, oracle=True)


def copy(base: Path, to: Path) -> Path:
    shutil.copytree(base, to)
    return to


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- pages built from the truth


def truth_model(out: Path) -> dict[str, Any]:
    """What truth.json's attract formula needs, read from the truth files (independent of the simulator)."""
    doc = json.loads((out / "_truth" / "truth.json").read_text())
    users = pq.read_table(out / "_truth" / "users.parquet").to_pandas().sort_values("user_id")
    content = pq.read_table(out / "_truth" / "content.parquet").sort_by("content_id")
    categories = doc["catalog"]["categories"]
    a = doc["click_model"]["attract"]
    taste = users[[f"taste_{c}" for c in categories]].to_numpy()
    return {
        "doc": doc,
        "user_ids": users["user_id"].to_numpy(),
        "content_ids": np.array(content["content_id"].to_pylist()),
        "taste_factor": (a["K"] * taste) ** a["taste_exponent"],
        "category": np.array([categories.index(c) for c in content["category"].to_pylist()]),
        "quality_factor": (content["quality"].to_numpy() / a["quality_mean"]) ** a["quality_exponent"],
        "published_ms": content["published_at"].cast(pa.int64()).to_numpy(),
        "examine": np.array(
            [v for _, v in sorted(doc["click_model"]["examine"]["by_position"].items(), key=lambda kv: int(kv[0]))]
        ),
    }


def attract(m: dict[str, Any], user: int, items: np.ndarray, ms: int, mult: float) -> np.ndarray:
    """truth.json's attract formula for one user at one moment over some items (no drift planted here)."""
    a = m["doc"]["click_model"]["attract"]
    age_hours = np.maximum(ms - m["published_ms"][items], 0) / 3_600_000
    fresh = a["freshness_floor"] + (1 - a["freshness_floor"]) * 0.5 ** (age_hours / a["freshness_half_life_hours"])
    base = a["base_attract"] * m["taste_factor"][user, m["category"][items]] * m["quality_factor"][items] * fresh
    return np.clip(base * mult, 0, 1)


def build_pages(out: Path, oracle: bool, users: range | None = None, seed: int = 0) -> pa.Table:
    """Pages per the shared interface: holdout users the 10 best-quality items (policy holdout), the others their
    10 truly most attractive items at the first continued day (oracle) or 10 random items."""
    m = truth_model(out)
    at = int(FIRST_CONTINUED.value // 1_000_000)
    available = np.flatnonzero(m["published_ms"] < at)
    quality_order = available[np.argsort(-m["quality_factor"][available], kind="stable")]
    rng = np.random.default_rng(seed)
    rows = []
    for u in users or range(0, 300, 2):
        user_id = f"u{u + 1:07d}"
        variant = assign_variant("personalization_holdout", user_id, list(HOLDOUT), [0.1, 0.9])
        if variant == "holdout":
            items, version = quality_order[:10], ""
        elif oracle:
            items, version = available[np.argsort(-attract(m, u, available, at, 1.0), kind="stable")[:10]], "7"
        else:
            items, version = rng.choice(available, size=10, replace=False), "7"
        for surface in ("home", "feed"):
            for rank, item in enumerate(items, start=1):
                rows.append(
                    {
                        "user_id": user_id,
                        "surface": surface,
                        "rank": rank,
                        "content_id": str(m["content_ids"][item]),
                        "score": 0.1,
                        "slot_kind": "popular" if variant == "holdout" else "personalized",
                        "reason": "test",
                        "propensity": 1.0 if rank > 1 else 0.25,
                        "policy": variant,
                        "variant": variant,
                        "model_version": version,
                    }
                )
    return pa.Table.from_pylist(rows)


# ---------------------------------------------------------------- reading the written events back


def clean_events(out: Path, since: pd.Timestamp = FIRST_CONTINUED) -> pd.DataFrame:
    """Well-formed events of the event files (malformed copies dropped by their id in the truth, duplicates
    dropped), occurred at or after ``since``."""
    malformed: set[str] = set()
    for path in [out / "_truth" / "faults.parquet", *sorted((out / "_truth" / "continued").glob("faults-*.parquet"))]:
        faults = pq.read_table(path).to_pandas()
        malformed |= set(faults.loc[~faults["fault"].isin(["duplicate", "late"]), "event_id"])
    rows = []
    for path in sorted((out / "events").glob("events-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("event_id") not in malformed:
                rows.append(row)
    frame = pd.DataFrame(rows).drop_duplicates("event_id")
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame.loc[frame["occurred_at"] >= since].reset_index(drop=True)


# ---------------------------------------------------------------- tests


def test_continuing_is_deterministic_and_adds_files_only(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    before = digests(base / "events") | {f"users/{k}": v for k, v in digests(base / "users").items()}
    a, b = copy(base, tmp_path / "a"), copy(base, tmp_path / "b")
    result = continue_simulation(a, 3, pages=pages)
    continue_simulation(b, 3, pages=pages)
    assert digests(a / "events") == digests(b / "events") and digests(a / "_truth") == digests(b / "_truth")
    after = digests(a / "events") | {f"users/{k}": v for k, v in digests(a / "users").items()}
    assert {k: after[k] for k in before} == before  # earlier files untouched
    new = sorted(set(after) - set(before))
    assert new and all(Path(p).name.removeprefix("events-")[:10] >= "2026-01-13" for p in new if "events" in p)
    assert any(".2.jsonl" in p for p in new)  # a delivery day that already had late events of the first run
    doc = json.loads((a / "_truth" / "truth.json").read_text())
    segment = doc["continuations"][0]
    assert (segment["start_date"], segment["end_date"], segment["policy"]) == ("2026-01-13", "2026-01-15", "cached")
    assert result.events_written == segment["counts"]["events_written"] > 0
    assert doc["counts_total"]["events_written"] == doc["counts"]["events_written"] + result.events_written
    lines = sum(len(p.read_bytes().splitlines()) for p in (a / "events").glob("*.jsonl"))
    assert lines == doc["counts_total"]["events_written"]


def test_continuing_twice_equals_continuing_once_for_twice_the_days(
    base: Path, pages: pa.Table, tmp_path: Path
) -> None:
    twice, once = copy(base, tmp_path / "twice"), copy(base, tmp_path / "once")
    continue_simulation(twice, 2, pages=pages)
    continue_simulation(twice, 2, pages=pages)
    continue_simulation(once, 4, pages=pages)

    # The same events, only split differently into files (the first run's tail days get a second file).
    def lines(out: Path) -> list[bytes]:
        return sorted(line for p in (out / "events").glob("*.jsonl") for line in p.read_bytes().splitlines())

    assert lines(twice) == lines(once)
    for kind in ("users", "content"):
        assert digests(twice / kind) == digests(once / kind)
    a, b = ClosedLoopTruth.from_folder(twice), ClosedLoopTruth.from_folder(once)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert a.summary["personalization_holdout"] == b.summary["personalization_holdout"]
    assert a.summary["true_ctr"] == b.summary["true_ctr"]


def test_served_pages_are_exactly_the_files_rows(base: Path, tmp_path: Path) -> None:
    pages = build_pages(base, oracle=True, users=range(0, 300, 3)).to_pandas()
    # Active users with pages: three get a short page on home only, three get 12 ranks (10 shown).
    sessions = pq.read_table(base / "_truth" / "sessions.parquet").to_pandas()["user_id"].value_counts()
    active = list(sessions.reindex(pages["user_id"].unique()).nlargest(6).index)
    short_users, long_users = active[:3], active[3:]
    short = pages.loc[pages["user_id"].isin(short_users) & (pages["surface"] == "home") & (pages["rank"] <= 3)]
    extra = pages.loc[pages["user_id"].isin(long_users) & (pages["rank"] <= 2)].assign(rank=lambda f: f["rank"] + 10)
    kept = pages.loc[~pages["user_id"].isin(short_users)]
    pages = pd.concat([kept, short, extra]).sample(frac=1, random_state=1)
    out = copy(base, tmp_path / "out")
    continue_simulation(out, 2, pages=pa.Table.from_pandas(pages, preserve_index=False))
    events = clean_events(out)
    impressions = events.loc[events["event_type"] == "impression"]
    expected = pages.loc[pages["rank"] <= 10].sort_values("rank").groupby(["user_id", "surface"])
    pages_of = {key: group for key, group in expected}
    served, odd = 0, set[tuple[str, int]]()
    for (user, surface, _), shown in impressions.groupby(["user_id", "surface", "request_id"]):
        page = pages_of.get((user, surface))
        shown = shown.sort_values("position")
        if page is None:
            assert shown["policy"].isna().all() and len(shown) == 10  # the logging policy, nothing logged
            continue
        served += 1
        assert list(shown["content_id"]) == list(page["content_id"])
        assert list(shown["position"]) == list(page["rank"])
        assert list(shown["policy"]) == list(page["policy"])
        assert list(shown["propensity"]) == list(page["propensity"])
        version = shown["model_version"].fillna("")
        assert list(version) == list(page["model_version"])
        if user in active:
            odd.add((user in short_users, len(shown)))
    assert served > 100
    assert odd == {(True, 3), (False, 10)}


def test_holdout_users_never_see_a_personalized_page(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    out = copy(base, tmp_path / "out")
    continue_simulation(out, 3, pages=pages)
    impressions = clean_events(out).query("event_type == 'impression'")
    arm = {u: assign_variant("personalization_holdout", u, list(HOLDOUT), [0.1, 0.9]) for u in impressions["user_id"]}
    holdout = impressions.loc[impressions["user_id"].map(arm) == "holdout"]
    assert len(holdout) > 100
    assert (holdout["policy"] != "personalized").all() and holdout["model_version"].isna().all()
    personalized = impressions.loc[impressions["user_id"].map(arm) == "personalized"]
    assert (personalized["policy"].dropna() == "personalized").all()


def test_each_served_user_is_exposed_once(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    out = copy(base, tmp_path / "out")
    continue_simulation(out, 2, pages=pages)
    continue_simulation(out, 2, pages=pages)
    events = clean_events(out)
    exposures = events.loc[events["experiment_id"] == "personalization_holdout"]
    served = events.loc[(events["event_type"] == "impression") & events["policy"].notna()]
    assert exposures["user_id"].is_unique
    assert set(exposures["user_id"]) == set(served["user_id"])
    first = served.groupby("user_id")["occurred_at"].min()
    at = exposures.set_index("user_id")["occurred_at"]
    assert ((first - at.reindex(first.index)) == pd.Timedelta(milliseconds=1)).all()
    variant = pages.to_pandas().drop_duplicates("user_id").set_index("user_id")["variant"]
    assert (exposures.set_index("user_id")["variant"] == variant.reindex(at.index)).all()
    doc = json.loads((out / "_truth" / "truth.json").read_text())
    arms = doc["closed_loop"]["personalization_holdout"]["arms"]
    assert sum(a["users_exposed"] for a in arms) == len(exposures)


def test_truth_values_equal_an_independent_recomputation(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    """Served, oracle and popularity values of some requests, from truth.json's formula and the truth tables."""
    out = copy(base, tmp_path / "out")
    continue_simulation(out, 2, pages=pages)
    m = truth_model(out)
    truth = ClosedLoopTruth.from_folder(out)
    impressions = pd.concat(
        [
            pq.read_table(p).to_pandas()
            for p in [
                out / "_truth" / "impressions.parquet",
                *sorted((out / "_truth" / "continued").glob("impressions-*.parquet")),
            ]
        ]
    )
    impressions["day"] = impressions["occurred_at"].dt.floor("D")
    item_of = {c: i for i, c in enumerate(m["content_ids"])}
    requests = truth.requests.sample(25, random_state=3)
    for row in requests.itertuples():
        user = int(row.user_id[1:]) - 1
        ms = int(row.occurred_at.value // 1_000_000)
        day = row.occurred_at.floor("D")
        shown = impressions.loc[impressions["request_id"] == row.request_id].sort_values("position")
        items = np.array([item_of[c] for c in shown["content_id"]])
        value = attract(m, user, items, ms, row.experiment_multiplier) @ m["examine"][: len(items)]
        assert value == pytest.approx(row.expected_clicks_served, rel=1e-9)
        # Oracle: published before the request, not clicked by the user before the request's day.
        consumed = impressions.loc[
            (impressions["user_id"] == row.user_id) & impressions["clicked"] & (impressions["day"] < day), "content_id"
        ]
        free = np.setdiff1d(np.flatnonzero(m["published_ms"] < ms), [item_of[c] for c in consumed])
        best = np.sort(attract(m, user, free, ms, row.experiment_multiplier))[::-1][:10]
        assert best @ m["examine"] == pytest.approx(row.expected_clicks_oracle, rel=1e-9)
        # Popularity: most clicks in the 7 days before the request's day, ties by lower id.
        window = impressions.loc[
            impressions["clicked"] & (impressions["day"] < day) & (impressions["day"] >= day - pd.Timedelta(days=7))
        ]
        clicks = window["content_id"].map(item_of).value_counts().reindex(free, fill_value=0)
        top = sorted(free, key=lambda i: (-clicks[i], i))[:10]
        value = attract(m, user, np.array(top), ms, row.experiment_multiplier) @ m["examine"]
        assert value == pytest.approx(row.expected_clicks_popularity, rel=1e-9)


def test_known_truth_oracle_pages_beat_random_pages(base: Path, tmp_path: Path) -> None:
    """Serving each user's truly best items gives a higher true (and observed) CTR than serving random items;
    on the same requests the truth ranks oracle > logging > random."""
    everyone = range(300)
    best, random_ = copy(base, tmp_path / "best"), copy(base, tmp_path / "random")
    continue_simulation(best, 3, pages=build_pages(base, oracle=True, users=everyone))
    continue_simulation(random_, 3, pages=build_pages(base, oracle=False, users=everyone))
    a, b = ClosedLoopTruth.from_folder(best), ClosedLoopTruth.from_folder(random_)
    personalized_a = a.requests["page_policy"] == "personalized"
    personalized_b = b.requests["page_policy"] == "personalized"
    assert a.true_ctr("served", personalized_a) > 1.5 * b.true_ctr("served", personalized_b)
    observed = [
        t.requests.loc[rows, "clicks"].sum() / t.requests.loc[rows, "impressions"].sum()
        for t, rows in ((a, personalized_a), (b, personalized_b))
    ]
    assert observed[0] > observed[1]
    assert a.true_ctr("oracle") > a.true_ctr("logging") > a.true_ctr("random")
    # Random pages of the file and the truth's random page agree (both uniform over available items).
    assert b.true_ctr("served", personalized_b) == pytest.approx(b.true_ctr("random", personalized_b), rel=0.25)
    lift = a.summary["personalization_holdout"]
    assert lift["true_absolute_lift"] == pytest.approx(
        a.holdout_arms()["personalized"]["ctr_true"] - a.holdout_arms()["holdout"]["ctr_true"]
    )


def test_a_logging_run_after_a_served_one_keeps_the_arms(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    out = copy(base, tmp_path / "out")
    continue_simulation(out, 2, pages=pages)
    continue_simulation(out, 2)
    truth = ClosedLoopTruth.from_folder(out)
    later = truth.requests.loc[truth.requests["occurred_at"] >= pd.Timestamp("2026-01-15", tz="UTC")]
    assert (later["served_by"] == "logging").all()
    assert later["after_exposure"].sum() > 50 and later.loc[later["after_exposure"], "variant"].notna().all()
    doc = json.loads((out / "_truth" / "truth.json").read_text())
    assert [c["policy"] for c in doc["continuations"]] == ["cached", "logging"]
    assert "personalization_holdout" not in doc["continuations"][1]["exposures"]


def test_drift_can_be_planted_in_a_continued_run(base: Path, tmp_path: Path) -> None:
    out = copy(base, tmp_path / "out")
    drift = DriftConfig(category="sports", from_day=9, attract_multiplier=3.0)
    continue_simulation(out, 2, changes={"drift": drift})
    doc = json.loads((out / "_truth" / "truth.json").read_text())
    assert doc["continuations"][0]["config_changes"]["drift"]["category"] == "sports"
    assert doc["click_model"]["attract"]["drift_multiplier"]["from_at"] == "2026-01-14T00:00:00.000Z"
    imp = pq.read_table(next((out / "_truth" / "continued").glob("impressions-*.parquet"))).to_pandas()
    content = pq.read_table(out / "_truth" / "content.parquet").to_pandas().set_index("content_id")["category"]
    sports = imp["content_id"].map(content) == "sports"
    late = imp["occurred_at"] >= pd.Timestamp("2026-01-14", tz="UTC")
    # The drift carries on into the next run; the world may not change.
    continue_simulation(out, 1)
    doc = json.loads((out / "_truth" / "truth.json").read_text())
    assert doc["click_model"]["attract"]["drift_multiplier"]["planted"]
    assert (
        imp.loc[sports & late, "attract_without_experiments"].mean()
        > 2 * imp.loc[sports & ~late, "attract_without_experiments"].mean()
    )
    with pytest.raises(ValueError, match="cannot change \\['users'\\]"):
        continue_simulation(out, 1, changes={"users": 10})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns=["propensity"]), "lack the columns \\['propensity'\\]"),
        (lambda f: f.assign(user_id="u9999999"), "user_id 'u9999999' is not one of the users"),
        (lambda f: f.assign(surface="search"), "unknown surfaces \\['search'\\]"),
        (lambda f: f.assign(content_id="c0009999"), "content_id 'c0009999' is not one of the items"),
        (lambda f: f.assign(propensity=1.5), "propensity must be a probability"),
        (lambda f: f.assign(rank=1), "has rank 1 twice on"),
        (lambda f: f.assign(variant=np.where(f["rank"] == 1, "holdout", "personalized")), "different variants"),
    ],
)
def test_pages_that_cannot_be_served_are_refused_with_the_reason(
    base: Path, pages: pa.Table, tmp_path: Path, edit: Any, message: str
) -> None:
    out = copy(base, tmp_path / "out")
    bad = pa.Table.from_pandas(edit(pages.to_pandas()), preserve_index=False)
    with pytest.raises(PagesError, match=message):
        continue_simulation(out, 1, pages=bad)
    assert digests(out) == digests(base)  # nothing written


def test_pages_of_items_published_later_are_refused(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    out = copy(base, tmp_path / "out")
    continue_simulation(out, 2)
    # An item of the next day: the world a run serves in already holds the items of the days it plays.
    ahead = copy(out, tmp_path / "ahead")
    continue_simulation(ahead, 1)
    content = pq.read_table(ahead / "_truth" / "content.parquet").to_pandas()
    late = content.loc[content["published_at"] >= FIRST_CONTINUED + pd.Timedelta(days=2), "content_id"].iloc[0]
    frame = pages.to_pandas()
    frame.loc[0, "content_id"] = late
    with pytest.raises(PagesError, match="published on or after the first served day"):
        continue_simulation(out, 1, pages=pa.Table.from_pandas(frame, preserve_index=False))


def test_generate_continue_on_the_command_line(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    out = copy(base, tmp_path / "out")
    path = tmp_path / "batch_recommendations.parquet"
    pq.write_table(pages, path)
    env = {"TAILOR_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    done = runner.invoke(
        main,
        [
            "generate",
            "--days",
            "1",
            "--continue",
            "--out",
            str(out),
            "--policy",
            "cached",
            "--pages",
            str(path),
            "--json",
        ],
        env=env,
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["events_written"] > 0
    missing = runner.invoke(
        main, ["generate", "--days", "1", "--continue", "--out", str(out), "--policy", "cached"], env=env
    )
    assert missing.exit_code == 1 and "batch_recommendations.parquet does not exist" in missing.stderr
    seeded = runner.invoke(main, ["generate", "--days", "1", "--continue", "--out", str(out), "--seed", "3"], env=env)
    assert seeded.exit_code == 1 and "--seed: a continued run keeps the world" in seeded.stderr
    fresh = runner.invoke(
        main, ["generate", "--days", "1", "--out", str(tmp_path / "new"), "--policy", "cached"], env=env
    )
    assert fresh.exit_code == 1 and "add --continue" in fresh.stderr


def test_pages_without_a_holdout_policy_are_served(base: Path, pages: pa.Table, tmp_path: Path) -> None:
    """A 0% holdout: no page carries policy "holdout". Serving them crashed on `policies.index("holdout")`."""
    frame = pages.to_pandas()
    frame = frame.loc[frame["policy"] != "holdout"]
    personalized_only = pa.Table.from_pandas(frame, preserve_index=False)
    result = continue_simulation(copy(base, tmp_path / "all"), 1, pages=personalized_only)
    assert result.events_written > 0
    served = ClosedLoopTruth.from_folder(tmp_path / "all").requests
    assert len(served) > 0 and "holdout" not in set(served["page_policy"].astype(str))
