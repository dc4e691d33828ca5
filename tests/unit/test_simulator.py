"""The simulator: numbers people rely on (position bias, fault rates, experiment effects), layout, contract.

Observed quantities are computed from the written files, the way the pipeline would see them, and compared
with independent references: the configured formula, binomial noise around the truth's exact probabilities,
the JSON Schemas, numpy's own timestamp formatting. Runs are small (seconds) and shared per module.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jsonschema import Draft202012Validator

from simulator import DriftConfig, ExperimentConfig, SimulationConfig, SimulationResult, simulate
from simulator.config import MALFORMED_KINDS, users_for_events
from simulator.formatting import scramble48, timestamps, to_strings
from tailor.assignment import assign_variant

pytestmark = pytest.mark.unit

CONTRACT = Path(__file__).resolve().parents[2] / "tailor" / "contract"
SMALL = SimulationConfig(users=300, days=10)
DEMO = SimulationConfig()  # the defaults: 2,000 users x 28 days
EVENT_ID = re.compile(r'"event_id":"(e[0-9a-f]{12})"')


# ---------------------------------------------------------------- runs shared by the tests of this module


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(SMALL, tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(DEMO, tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo_db(demo: SimulationResult) -> Iterator[duckdb.DuckDBPyConnection]:
    con = events_db(demo.out_dir)
    yield con
    con.close()


def truth(result: SimulationResult) -> dict[str, Any]:
    return json.loads(result.truth_path.read_text())


def schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((CONTRACT / f"{name}.schema.json").read_text()))


def events_db(out: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB views over the written event files: ``lines`` (raw), ``events`` (well-formed rows, duplicates
    included) and ``clean`` (one row per event_id), identified without the truth except for malformed ids."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(
        f"""
        create view lines as
        select regexp_extract(filename, 'events-(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1)::date as file_date, raw
        from read_csv('{out}/events/*.jsonl', columns = {{'raw': 'VARCHAR'}}, delim = '\x01', quote = '',
                      escape = '', header = false, auto_detect = false, filename = true)
        """
    )
    con.execute(
        f"""
        create table malformed_ids as
        select event_id from '{out}/_truth/faults.parquet' where fault not in ('duplicate', 'late')
        """
    )
    con.execute(
        """
        create view events as
        select
            file_date,
            raw ->> 'event_id' as event_id,
            raw ->> 'event_type' as event_type,
            raw ->> 'user_id' as user_id,
            (raw ->> 'occurred_at')::timestamptz as occurred_at,
            (raw ->> 'received_at')::timestamptz as received_at,
            raw ->> 'content_id' as content_id,
            raw ->> 'request_id' as request_id,
            (raw ->> 'position')::integer as position,
            raw ->> 'surface' as surface,
            (raw ->> 'dwell_seconds')::double as dwell_seconds,
            (raw ->> 'value')::double as value,
            raw ->> 'experiment_id' as experiment_id,
            raw ->> 'variant' as variant
        from lines
        where json_valid(raw)
          and raw ->> 'event_id' is not null
          and raw ->> 'event_id' not in (select event_id from malformed_ids)
        """
    )
    con.execute(
        """
        create table clean as
        select * from events
        qualify row_number() over (partition by event_id order by received_at, file_date) = 1
        """
    )
    return con


# ---------------------------------------------------------------- layout, determinism, interface


def test_output_layout(small: SimulationResult) -> None:
    out = small.out_dir
    day_names = {(SMALL.start_date + timedelta(days=d)).isoformat() for d in range(SMALL.days)}
    events = sorted(p.name for p in (out / "events").iterdir())
    assert all(re.fullmatch(r"events-\d{4}-\d{2}-\d{2}\.jsonl", name) for name in events)
    event_days = {name[7:17] for name in events}
    assert day_names <= event_days  # every simulated day has a delivery file ...
    assert max(event_days) <= (SMALL.end_date + timedelta(days=3)).isoformat()  # ... late ones trail by <= 3 days
    assert (out / "users" / f"users-{SMALL.start_date.isoformat()}.jsonl").exists()
    assert (out / "content" / f"content-{SMALL.start_date.isoformat()}.jsonl").exists()
    names = {p.name for p in (out / "_truth").iterdir()}
    assert {"truth.json", "users.parquet", "content.parquet", "impressions.parquet", "faults.parquet"} <= names
    assert not list(out.rglob("*.part"))  # atomic writes leave no temporary files
    for path in [*small.event_files, *small.user_files, *small.content_files]:
        assert path.stat().st_size > 0  # ingestion refuses empty files, so none is written
    assert small.files_written == len(small.event_files) + len(small.user_files) + len(small.content_files)


def test_counts_in_result_truth_and_files_agree(small: SimulationResult) -> None:
    lines = sum(p.read_bytes().count(b"\n") for p in small.event_files)
    doc = truth(small)["counts"]
    assert lines == small.events_written == doc["events_written"]
    assert small.events_written == small.clean_events + small.duplicates + small.malformed_total
    assert doc["clean_events"] == small.clean_events == sum(doc["clean_events_by_type"].values())
    assert doc["malformed"] == small.malformed
    assert small.users == SMALL.users
    summary = json.loads(json.dumps(small.as_dict()))  # JSON-ready, for the CLI
    assert summary["events_written"] == small.events_written
    assert summary["malformed_total"] == small.malformed_total


def test_same_seed_gives_identical_bytes(small: SimulationResult, tmp_path: Path) -> None:
    again = simulate(SMALL, tmp_path)
    first = {p.relative_to(small.out_dir): p.read_bytes() for p in small.out_dir.rglob("*") if p.is_file()}
    second = {p.relative_to(again.out_dir): p.read_bytes() for p in again.out_dir.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)


def test_another_seed_gives_another_history(small: SimulationResult, tmp_path: Path) -> None:
    other = simulate(replace(SMALL, seed=8), tmp_path)
    day = f"events/events-{SMALL.start_date.isoformat()}.jsonl"
    assert (small.out_dir / day).read_bytes() != (other.out_dir / day).read_bytes()


def test_progress_is_reported_per_day_and_output_is_not_overwritten_by_accident(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    config = SimulationConfig(users=50, days=3)
    simulate(config, tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(FileExistsError, match="already holds simulator output"):
        simulate(config, tmp_path)
    assert simulate(config, tmp_path, overwrite=True).events_written > 0


def test_config_errors_say_what_to_change() -> None:
    with pytest.raises(ValueError, match="users must be between"):
        SimulationConfig(users=0)
    with pytest.raises(ValueError, match="needs one weight per variant"):
        SimulationConfig(experiments=(ExperimentConfig("x", weights=(1.0,)),))
    with pytest.raises(ValueError, match="names surfaces not in"):
        SimulationConfig(experiments=(ExperimentConfig("x", surfaces=("checkout",)),))


def test_estimated_events_sizes_runs(demo: SimulationResult) -> None:
    assert 300_000 <= demo.events_written <= 600_000  # the demo must stay a few-minute pipeline run
    assert abs(DEMO.estimated_events() / demo.events_written - 1) < 0.15
    sized = replace(DEMO, users=users_for_events(1_000_000))
    assert abs(sized.estimated_events() / 1_000_000 - 1) < 0.01


# ---------------------------------------------------------------- the contract


def test_valid_rows_follow_the_json_schemas(small: SimulationResult) -> None:
    faults = pq.read_table(small.out_dir / "_truth" / "faults.parquet").to_pydict()
    malformed = {e for e, f in zip(faults["event_id"], faults["fault"], strict=True) if f in MALFORMED_KINDS}
    rng = np.random.default_rng(0)
    lines = [line for p in small.event_files for line in p.read_text().splitlines()]
    checked = 0
    validator = schema("event")
    for i in rng.choice(len(lines), size=3_000, replace=False):
        found = EVENT_ID.search(lines[i])
        if found is None or found.group(1) in malformed:
            continue  # malformed rows are checked below
        row = json.loads(lines[i])
        errors = list(validator.iter_errors(row))
        assert not errors, (lines[i], errors[0].message)
        assert set(row) == _EXPECTED_FIELDS[row["event_type"]]  # nothing that does not belong
        checked += 1
    assert checked > 2_500
    for kind, files in (("user", small.user_files), ("content", small.content_files)):
        validator = schema(kind)
        for path in files:
            for line in path.read_text().splitlines():
                errors = list(validator.iter_errors(json.loads(line)))
                assert not errors, (line, errors[0].message)


_ENVELOPE = {"event_id", "event_type", "user_id", "occurred_at", "received_at"}
_EXPECTED_FIELDS = {
    "impression": _ENVELOPE | {"content_id", "position", "surface", "request_id"},
    "click": _ENVELOPE | {"content_id", "request_id"},
    "view": _ENVELOPE | {"content_id", "dwell_seconds"},
    "conversion": _ENVELOPE | {"value", "currency"},
    "exposure": _ENVELOPE | {"experiment_id", "variant"},
}


def test_each_malformed_kind_fails_the_contract(small: SimulationResult) -> None:
    faults = pq.read_table(small.out_dir / "_truth" / "faults.parquet").to_pydict()
    kind_of = {e: f for e, f in zip(faults["event_id"], faults["fault"], strict=True) if f in MALFORMED_KINDS}
    validator = schema("event")
    seen: dict[str, int] = dict.fromkeys(MALFORMED_KINDS, 0)
    anonymous = 0  # malformed rows whose event_id was removed or cut away
    for path in small.event_files:
        for line in path.read_text().splitlines():
            found = EVENT_ID.search(line)
            kind = kind_of.get(found.group(1)) if found else None
            if found and kind is None:
                continue  # a well-formed row
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                assert kind in ("invalid_json", None), line
                seen["invalid_json"] += found is not None
                anonymous += found is None
                continue
            if kind is None:
                anonymous += 1
                assert "event_id" not in row and not validator.is_valid(row), line
            elif kind == "future_timestamp":
                # Well-formed JSON Schema-wise; impossible in time: the warehouse rejects it by rule.
                assert validator.is_valid(row), line
                assert _parse(row["occurred_at"]) > _parse(row["received_at"]) + timedelta(hours=24)
                seen[kind] += 1
            else:
                assert not validator.is_valid(row), (kind, line)
                seen[kind] += 1
    expected = small.malformed
    assert all(expected[k] > 0 for k in MALFORMED_KINDS), expected  # every kind is planted
    assert anonymous == sum(expected.values()) - sum(seen.values())
    for kind in MALFORMED_KINDS:
        assert seen[kind] <= expected[kind]
    # Rows keep their id except missing_field (event_id dropped) and invalid_json (cut before the id).
    assert all(seen[k] == expected[k] for k in MALFORMED_KINDS if k not in ("missing_field", "invalid_json"))


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_timestamp_formatting_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    ms = np.concatenate(
        [
            rng.integers(0, 4_102_444_800_000, size=20_000),  # 1970 .. 2100
            np.array([951_782_400_000, 951_868_799_999, 1_767_225_599_999, 1_767_225_600_000]),  # leap day, edges
        ]
    )
    expected = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
    assert to_strings(timestamps(ms)) == expected.tolist()


def test_ids_are_unique_and_scrambled() -> None:
    numbers = np.arange(500_000, dtype=np.int64)
    ids = scramble48(numbers, key=7)
    assert len(np.unique(ids)) == len(numbers)  # a bijection: no two events share an id
    assert not np.all(np.diff(ids.astype(np.int64)) > 0)  # and they do not reveal the order


# ---------------------------------------------------------------- faults


def test_fault_rates_and_counts_match_the_truth(demo: SimulationResult, demo_db: duckdb.DuckDBPyConnection) -> None:
    clean = demo.clean_events
    assert abs(demo.duplicates / clean - DEMO.duplicate_rate) < 0.0015
    assert abs(demo.late / clean - DEMO.late_rate) < 0.002
    assert abs(demo.malformed_total / clean - DEMO.malformed_rate) < 0.001
    assert all(n > 0 for n in demo.malformed.values())
    # Counted from the files, independently of the fault log:
    rows, distinct = demo_db.execute("select count(*), count(distinct event_id) from events").fetchall()[0]
    assert distinct == clean
    assert rows - distinct == demo.duplicates
    late = demo_db.execute("select count(*) from clean where received_at - occurred_at >= interval 1 hour")
    assert late.fetchall()[0][0] == demo.late
    doc = truth(demo)["faults"]
    assert doc["duplicates"]["count"] == demo.duplicates
    assert doc["late"]["count"] == demo.late
    assert doc["malformed"]["count_by_kind"] == demo.malformed


def test_late_events_sit_in_a_later_file(demo: SimulationResult, demo_db: duckdb.DuckDBPyConnection) -> None:
    late = demo_db.execute(
        f"""
        select e.file_date, e.occurred_at, e.received_at
        from clean e join '{demo.out_dir}/_truth/faults.parquet' f using (event_id)
        where f.fault = 'late'
        """
    ).fetchall()
    assert len(late) == demo.late
    for file_date, occurred, received in late:
        assert file_date > occurred.date()
        assert file_date == received.date()
        assert timedelta(hours=1) <= received - occurred <= timedelta(hours=72)
    # Every row is in the file of the UTC day it was received.
    misplaced = demo_db.execute("select count(*) from events where file_date <> received_at::date")
    assert misplaced.fetchall()[0][0] == 0


def test_duplicates_repeat_the_same_event(demo: SimulationResult) -> None:
    seen: dict[str, str] = {}
    repeats = 0
    for path in demo.event_files:
        for line in path.read_text().splitlines():
            found = EVENT_ID.search(line)
            if found is None:
                continue
            key = found.group(1)
            if key in seen:
                repeats += 1
                # The same payload; only a re-sent copy carries its own received_at.
                strip = re.compile(r',"received_at":"[^"]*"')
                assert strip.sub("", seen[key]) == strip.sub("", line)
            else:
                seen[key] = line
    assert repeats == demo.duplicates


# ---------------------------------------------------------------- the click model


def test_ctr_by_position_follows_examination_bias(tmp_path: Path) -> None:
    """With a uniformly random logged policy attractiveness does not depend on position, so
    CTR(p) / CTR(1) must follow (1 / p) ** eta."""
    config = replace(
        SimulationConfig(users=2_000, days=14, seed=11),
        policy_recency_weight=0.0,
        policy_popularity_weight=0.0,
        policy_quality_weight=0.0,
    )
    result = simulate(config, tmp_path)
    con = events_db(result.out_dir)
    rows = con.execute(
        """
        select i.position, count(*) as shown, count(c.event_id) as clicked
        from clean i left join clean c
          on c.event_type = 'click' and c.request_id = i.request_id and c.content_id = i.content_id
        where i.event_type = 'impression'
        group by 1 order by 1
        """
    ).fetchall()
    position = np.array([r[0] for r in rows], dtype=float)
    shown = np.array([r[1] for r in rows], dtype=float)
    clicked = np.array([r[2] for r in rows], dtype=float)
    ctr = clicked / shown
    ratio = ctr / ctr[0]
    expected = (1 / position) ** config.position_bias_eta
    # Delta-method standard error of a ratio of two independent binomial rates.
    se = ratio * np.sqrt((1 - ctr) / clicked + (1 - ctr[0]) / clicked[0])
    assert np.all(np.abs(ratio - expected)[1:] < 4 * se[1:]), (ratio, expected)
    slope = np.polyfit(np.log(position), np.log(ctr), 1, w=np.sqrt(clicked))[0]
    assert abs(-slope - config.position_bias_eta) < 0.08


def test_observed_clicks_match_the_true_probabilities(
    demo: SimulationResult, demo_db: duckdb.DuckDBPyConnection
) -> None:
    """Under the default (non-random) policy: clicks per position equal the sum of the truth's exact
    probabilities over the same impressions, within binomial noise."""
    rows = demo_db.execute(
        f"""
        with clicks as (
            select i.event_id, count(c.event_id) > 0 as clicked
            from clean i left join clean c
              on c.event_type = 'click' and c.request_id = i.request_id and c.content_id = i.content_id
            where i.event_type = 'impression'
            group by 1
        )
        select t.position, sum(clicks.clicked::int), sum(t.p_click), sum(t.p_click * (1 - t.p_click)), count(*)
        from clicks join '{demo.out_dir}/_truth/impressions.parquet' t using (event_id)
        group by 1 order by 1
        """
    ).fetchall()
    doc = truth(demo)["click_model"]["examine"]["by_position"]
    assert len(rows) == DEMO.slate_size
    assert sum(r[4] for r in rows) == demo.clean_events_by_type["impression"]
    for position, observed, expected, variance, _ in rows:
        assert abs(observed - expected) < 4 * math.sqrt(variance), (position, observed, expected)
        assert doc[str(position)] == pytest.approx((1 / position) ** DEMO.position_bias_eta)


def test_truth_parameters_reproduce_every_click_probability(small: SimulationResult) -> None:
    """Recompute P(click) from truth.json's formula and parameters and the truth tables alone."""
    doc = truth(small)["click_model"]
    attract = doc["attract"]
    imp, users, content = (_columns(small, name) for name in ("impressions", "users", "content"))
    categories = truth(small)["catalog"]["categories"]
    user_row = {u: i for i, u in enumerate(users["user_id"])}
    item_row = {c: i for i, c in enumerate(content["content_id"])}
    u = np.array([user_row[x] for x in imp["user_id"]])
    j = np.array([item_row[x] for x in imp["content_id"]])
    category = np.array([categories.index(x) for x in content["category"]])[j]
    taste = np.stack([users[f"taste_{c}"] for c in categories], axis=1)[u, category]
    taste_factor = (attract["K"] * taste) ** attract["taste_exponent"]
    quality_factor = (content["quality"][j] / attract["quality_mean"]) ** attract["quality_exponent"]
    age_hours = (imp["occurred_at"] - content["published_at"][j]) / 3_600_000
    fresh = attract["freshness_floor"] + (1 - attract["freshness_floor"]) * 0.5 ** (
        age_hours / attract["freshness_half_life_hours"]
    )
    raw = attract["base_attract"] * taste_factor * quality_factor * fresh
    examine = (1 / imp["position"]) ** doc["examine"]["eta"]
    recomputed = examine * np.clip(raw * imp["experiment_multiplier"], 0, 1)
    np.testing.assert_allclose(recomputed, imp["p_click"], rtol=1e-9)
    np.testing.assert_allclose(np.clip(raw, 0, 1), imp["attract_without_experiments"], rtol=1e-9)


def _columns(result: SimulationResult, table: str) -> dict[str, np.ndarray]:
    """A truth table as numpy columns (timestamps as epoch milliseconds)."""
    data = pq.read_table(result.out_dir / "_truth" / f"{table}.parquet")
    out = {}
    for name in data.column_names:
        column = data.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        out[name] = np.asarray(column.to_numpy(zero_copy_only=False))
    return out


def test_views_follow_clicks(demo_db: duckdb.DuckDBPyConnection) -> None:
    clicks, views, unmatched, too_early = demo_db.execute(
        """
        with c as (select * from clean where event_type = 'click'),
             v as (select * from clean where event_type = 'view')
        select
            (select count(*) from c),
            (select count(*) from v),
            (select count(*) from c anti join clean i
               on i.event_type = 'impression' and i.request_id = c.request_id and i.content_id = c.content_id),
            (select count(*) from c join clean i
               on i.event_type = 'impression' and i.request_id = c.request_id and i.content_id = c.content_id
             where c.occurred_at <= i.occurred_at)
        """
    ).fetchall()[0]
    assert clicks == views > 0
    assert unmatched == 0  # every click names the impression's request_id and content_id
    assert too_early == 0  # and happens after it
    median = demo_db.execute("select median(dwell_seconds) from clean where event_type = 'view'").fetchall()
    assert 20 < median[0][0] < 180


# ---------------------------------------------------------------- experiments


def _arm_ctr(con: duckdb.DuckDBPyConnection, experiment: dict[str, Any], post: bool) -> dict[str, Any]:
    """CTR per arm on the experiment's surfaces, before or after its start, for users exposed to it
    (arm from the exposure events), with a user-clustered (delta-method) variance of each ratio."""
    surfaces = ", ".join(f"'{s}'" for s in experiment["surfaces"])
    when = ">=" if post else "<"
    rows = con.execute(
        f"""
        with arm as (
            select user_id, any_value(variant) as variant from clean
            where event_type = 'exposure' and experiment_id = '{experiment["experiment_id"]}'
            group by 1
        ),
        shown as (
            select i.user_id, i.request_id, i.content_id from clean i
            where i.event_type = 'impression' and i.surface in ({surfaces})
              and i.occurred_at {when} '{experiment["start_at"]}'::timestamptz
        ),
        per_user as (
            select s.user_id, count(*) as n, count(c.event_id) as k
            from shown s left join clean c
              on c.event_type = 'click' and c.request_id = s.request_id and c.content_id = s.content_id
            group by 1
        )
        select a.variant, list(p.n), list(p.k) from per_user p join arm a using (user_id) group by 1
        """
    ).fetchall()
    out = {}
    for variant, n, k in rows:
        n_, k_ = np.array(n, dtype=float), np.array(k, dtype=float)
        rate = k_.sum() / n_.sum()
        out[variant] = (rate, float(((k_ - rate * n_) ** 2).sum() / n_.sum() ** 2))
    return out


def _lift(arms: dict[str, Any], control: str, treatment: str) -> tuple[float, float]:
    (r0, v0), (r1, v1) = arms[control], arms[treatment]
    return math.log(r1 / r0), math.sqrt(v0 / r0**2 + v1 / r1**2)


def test_planted_ctr_effect_is_visible(demo: SimulationResult, demo_db: duckdb.DuckDBPyConnection) -> None:
    experiment = next(e for e in truth(demo)["experiments"] if e["target"] == "ctr")
    control, treatment = experiment["variants"]
    lift, se = _lift(_arm_ctr(demo_db, experiment, post=True), control, treatment)
    arms = {a["variant"]: a for a in experiment["arms"]}
    # The truth's expected lift (from exact probabilities over the same impressions) is about +8%.
    expected = math.log(arms[treatment]["ctr_expected"] / arms[control]["ctr_expected"])
    assert arms[treatment]["ctr_true_relative_effect"] == pytest.approx(0.08, abs=0.01)
    assert lift > 0
    assert abs(lift - expected) < 3 * se
    pre, pre_se = _lift(_arm_ctr(demo_db, experiment, post=False), control, treatment)
    # No effect before the start. (3.5 SE: heavy-tailed activity makes the normal approximation rough.)
    assert abs(pre) < 3.5 * pre_se


def test_treated_clicks_exceed_the_no_effect_model(demo: SimulationResult) -> None:
    """Conditioned on the impressions actually shown, treated clicks beat the no-effect probabilities by
    the planted factor (binomial noise only), and control clicks match them."""
    experiment = next(e for e in truth(demo)["experiments"] if e["target"] == "ctr")
    folder = demo.out_dir / "_truth"
    rows = (
        duckdb.connect()
        .execute(
            f"""
        select u."variant_{experiment["experiment_id"]}" as variant, sum(i.clicked::int),
               sum(i.examine * i.attract_without_experiments), sum(i.p_click * (1 - i.p_click))
        from '{folder}/impressions.parquet' i join '{folder}/users.parquet' u using (user_id)
        where i.surface in ({", ".join(f"'{s}'" for s in experiment["surfaces"])})
          and i.occurred_at >= '{experiment["start_at"]}'::timestamptz
        group by 1
        """
        )
        .fetchall()
    )
    ratio = {variant: (observed / expected, math.sqrt(var) / expected) for variant, observed, expected, var in rows}
    assert abs(ratio["control"][0] - 1) < 4 * ratio["control"][1]
    assert ratio["treatment"][0] > 1 + 4 * ratio["treatment"][1]
    assert abs(ratio["treatment"][0] - 1.08) < 4 * ratio["treatment"][1] + 0.01  # clipping trims a little


def test_aa_arms_do_not_differ(demo: SimulationResult, demo_db: duckdb.DuckDBPyConnection) -> None:
    experiment = next(e for e in truth(demo)["experiments"] if e["kind"] == "A/A")
    a, b = experiment["variants"]
    lift, se = _lift(_arm_ctr(demo_db, experiment, post=True), a, b)
    assert abs(lift) < 3 * se
    assert all(arm["ctr_true_relative_effect"] == 0 for arm in experiment["arms"])


def test_exposures_follow_the_start_and_the_hash(demo: SimulationResult, demo_db: duckdb.DuckDBPyConnection) -> None:
    for experiment in truth(demo)["experiments"]:
        rows = demo_db.execute(
            f"""
            select user_id, variant, min(occurred_at) from clean
            where event_type = 'exposure' and experiment_id = '{experiment["experiment_id"]}'
            group by 1, 2
            """
        ).fetchall()
        assert len({r[0] for r in rows}) == len(rows) > 0  # one arm per user
        start = _parse(experiment["start_at"])
        for user_id, variant, first in rows[:500]:
            assert first >= start
            assert variant == assign_variant(
                experiment["experiment_id"], user_id, experiment["variants"], experiment["weights"]
            )
        assert DEMO.days / 4 <= experiment["pre_period_days"] <= DEMO.days / 2


def test_conversion_effect_is_planted(demo: SimulationResult) -> None:
    experiment = next(e for e in truth(demo)["experiments"] if e["target"] == "conversion")
    arms = {a["variant"]: a for a in experiment["arms"]}
    assert arms["treatment"]["conversion_true_relative_effect"] == pytest.approx(0.10, abs=0.005)
    assert arms["control"]["conversion_true_relative_effect"] == 0
    sessions = pq.read_table(demo.out_dir / "_truth" / "sessions.parquet").to_pandas()
    observed, expected = sessions["converted"].sum(), sessions["p_conversion"].sum()
    sd = math.sqrt((sessions["p_conversion"] * (1 - sessions["p_conversion"])).sum())
    assert abs(observed - expected) < 4 * sd
    assert observed == demo.clean_events_by_type["conversion"]


# ---------------------------------------------------------------- dimensions and other formats


def test_dimension_files_tell_the_profile_history(demo: SimulationResult) -> None:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    users_glob = f"{demo.out_dir}/users/*.jsonl"
    first_day = DEMO.start_date.isoformat()
    first = con.execute(
        f"""
        select count(distinct user_id), count(*) filter (where updated_at = signup_at)
        from read_json('{demo.out_dir}/users/users-{first_day}.jsonl')
        where signup_at < '{first_day}'::timestamptz
        """
    ).fetchall()[0]
    signed_before = con.execute(
        f"select count(*) from '{demo.out_dir}/_truth/users.parquet' where signup_at < '{first_day}'::timestamptz"
    ).fetchall()[0][0]
    assert first == (signed_before, signed_before)
    versions, distinct = con.execute(
        f"select count(*), count(distinct user_id) from read_json('{users_glob}')"
    ).fetchall()[0]
    assert distinct == DEMO.users  # every user has a first version
    user_days = DEMO.users * DEMO.days
    assert 0.3 * DEMO.plan_change_rate < (versions - distinct) / user_days < 1.5 * DEMO.plan_change_rate
    relabels = con.execute(
        f"""
        select count(*) from read_json('{demo.out_dir}/content/*.jsonl') c
        join '{demo.out_dir}/_truth/content.parquet' t using (content_id)
        where c.updated_at > c.published_at and c.category = t.category and t.label_at_publish <> t.category
        """
    ).fetchall()[0][0]
    assert relabels > 0  # mislabelled items get corrected versions


def test_parquet_output(tmp_path: Path) -> None:
    result = simulate(replace(SMALL, format="parquet"), tmp_path)
    names = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert names and all(re.fullmatch(r"events-\d{4}-\d{2}-\d{2}\.parquet", n) for n in names)
    tables = [pq.read_table(p) for p in result.event_files]
    assert sum(t.num_rows for t in tables) == result.events_written
    schema_ = tables[0].schema
    assert str(schema_.field("position").type) == "int64"
    assert str(schema_.field("dwell_seconds").type) == "double"
    assert str(schema_.field("event_id").type) == "string"
    # A typed Parquet file cannot hold a truncated line or a wrongly typed value: those kinds are skipped.
    assert result.malformed["invalid_json"] == result.malformed["bad_type"] == 0
    assert all(result.malformed[k] > 0 for k in ("missing_field", "unknown_event_type", "bad_timestamp"))
    assert truth(result)["faults"]["malformed"]["not_generated"] == ["bad_type", "invalid_json"]


def test_experiment_start_day_leaves_a_pre_period() -> None:
    spec = ExperimentConfig("x", start_fraction=1 / 3)
    assert spec.start_day(28) == 9
    assert spec.start_day(3) == 1
    assert date(2026, 1, 5) + timedelta(days=spec.start_day(28)) == date(2026, 1, 14)


def test_truth_document_lists_what_evaluation_needs(small: SimulationResult) -> None:
    doc = truth(small)
    assert doc["click_model"]["attract"]["base_attract"] == SMALL.base_attract
    assert doc["click_model"]["attract"]["freshness_half_life_hours"] == SMALL.freshness_half_life_hours
    assert len(doc["click_model"]["examine"]["by_position"]) == SMALL.slate_size
    for experiment in doc["experiments"]:
        assert {"variants", "weights", "start_date", "start_at", "surfaces", "target", "arms"} <= set(experiment)
        assert {"planted_relative_effect", "ctr_true_absolute_effect", "conversion_true_absolute_effect"} <= set(
            experiment["arms"][0]
        )
    assert {"duplicates", "late", "malformed"} <= set(doc["faults"])
    for name, table in doc["tables"].items():
        assert (small.out_dir / table["path"]).exists(), name
    users = set(doc["tables"]["users"]["columns"])
    assert {f"taste_{c}" for c in SMALL.categories} | {"activity", "user_id"} <= users
    assert {"quality", "category", "published_at"} <= set(doc["tables"]["content"]["columns"])
    assert doc["config"]["seed"] == SMALL.seed


def test_planted_drift_multiplies_one_categorys_attract_from_its_day(tmp_path: Path) -> None:
    """Same seed with and without drift: identical until the drift day; on that day the same slates are shown
    (the pool only knows earlier clicks) and only the drifting category's attract is multiplied."""
    base = SimulationConfig(users=300, days=4, experiments=())
    drift = DriftConfig(category="news", from_day=2, attract_multiplier=3.0)
    plain = simulate(base, tmp_path / "plain")
    drifted = simulate(replace(base, drift=drift), tmp_path / "drifted")
    doc = truth(drifted)["click_model"]["attract"]["drift_multiplier"]
    assert doc["planted"] and doc["from_at"] == "2026-01-07T00:00:00.000Z" and doc["attract_multiplier"] == 3.0
    assert "drift" not in truth(plain)["config"]  # configs without drift keep their truth.json
    a, b = _columns(plain, "impressions"), _columns(drifted, "impressions")
    start = int(datetime(2026, 1, 7, tzinfo=UTC).timestamp() * 1000)
    end = start + 86_400_000
    before, on_day = a["occurred_at"] < start, (a["occurred_at"] >= start) & (a["occurred_at"] < end)
    n = int((a["occurred_at"] < end).sum())
    assert (b["content_id"][:n] == a["content_id"][:n]).all()
    np.testing.assert_array_equal(b["p_click"][:n][before[:n]], a["p_click"][:n][before[:n]])
    content = _columns(drifted, "content")
    news = set(content["content_id"][content["category"] == "news"])
    is_news = np.array([c in news for c in a["content_id"][:n]])
    ratio = b["attract_without_experiments"][:n] / a["attract_without_experiments"][:n]
    unclipped = b["attract_without_experiments"][:n] < 1
    np.testing.assert_allclose(ratio[on_day[:n] & is_news & unclipped], 3.0, rtol=1e-12)
    np.testing.assert_allclose(ratio[on_day[:n] & ~is_news], 1.0, rtol=1e-12)
    assert (on_day[:n] & is_news).sum() > 200
    with pytest.raises(ValueError, match=r"drift\.category must be one of"):
        SimulationConfig(drift=DriftConfig(category="weather", from_day=1))
