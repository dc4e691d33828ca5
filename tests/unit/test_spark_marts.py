"""Publishing a Spark build's marts as the Parquet files DuckDB's post-hooks write (orchestration/lib/spark_marts.py),
and reading Spark's table folders where Feast's sources point (ml/features/sources.py). No Spark here: the folders
are laid out the way Spark writes a partitioned table (``name=value`` folders without the partition column in the
files, ``_SUCCESS`` beside the parts); the real Spark layout and types were checked against a Spark build by hand
(docs/scaling_out.md)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ml.features.digests import daily_digests, file_digest
from ml.features.sources import parquet_scan
from orchestration.lib.engine_support import NOT_SUPPORTED_YET, refusal
from orchestration.lib.spark_marts import publish_spark_marts, published_marts
from tailor.settings import DBT_PROJECT_DIR, Settings, get_settings

pytestmark = pytest.mark.unit


def _spark_like_table(settings: Settings, name: str) -> Path:
    """A table of 6 rows over 3 days, partitioned by event_date as the spark target writes fct_impressions."""
    folder = settings.spark_marts_dir / name
    folder.mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute(
            f"""copy (
                select 'i' || i as impression_id, (date '2026-01-01' + (i % 3)::int) as event_date,
                    (i * 0.5)::double as score
                from range(6) t(i)
            ) to '{folder}' (format parquet, partition_by (event_date))"""
        )
    (folder / "_SUCCESS").touch()
    return folder


def test_spark_tables_are_published_as_the_files_duckdb_publishes(tmp_path: Path) -> None:
    settings = replace(get_settings(tmp_path / "home"), engine="spark")
    _spark_like_table(settings, "fct_impressions")
    (settings.marts_dir).mkdir(parents=True)
    (settings.marts_dir / "fct_impressions.parquet").write_text("an older file, replaced whole")
    [mart] = publish_spark_marts(settings, {"fct_impressions": ()})
    assert mart.rows == 6 and mart.path == settings.marts_dir / "fct_impressions.parquet"
    with duckdb.connect() as con:
        types = dict(con.execute(f"select column_name, column_type from (describe '{mart.path}')").fetchall())
        rows = con.execute(f"select impression_id, event_date, score from '{mart.path}' order by score").fetchall()
    assert types == {"impression_id": "VARCHAR", "event_date": "DATE", "score": "DOUBLE"}
    assert rows[1] == ("i1", date(2026, 1, 2), 0.5) and len(rows) == 6
    assert not list(settings.marts_dir.glob("*.partial"))


def test_a_time_with_a_zone_is_published_with_its_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A contract's `timestamp with time zone` that DuckDB reads from Spark's files without a zone is published as
    TIMESTAMPTZ at the same UTC instant, whatever the machine's zone; other times stay as they are."""
    monkeypatch.setenv("TZ", "America/New_York")
    settings = replace(get_settings(tmp_path / "home"), engine="spark")
    folder = settings.spark_marts_dir / "fct_user_features_daily"
    folder.mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute(
            "copy (select 'u1' as user_id, timestamp '2026-01-02 00:00:00' as event_timestamp, "
            f"timestamp '2026-01-01 23:00:00' as last_ingested_at) to '{folder / 'part-0.parquet'}' (format parquet)"
        )
    [mart] = publish_spark_marts(settings, {"fct_user_features_daily": ("event_timestamp",)})
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        types = dict(con.execute(f"select column_name, column_type from (describe '{mart.path}')").fetchall())
        stamp = con.execute(f"select strftime(event_timestamp, '%Y-%m-%d %H:%M:%S %z') from '{mart.path}'").fetchone()
    assert types["event_timestamp"] == "TIMESTAMP WITH TIME ZONE" and types["last_ingested_at"] == "TIMESTAMP"
    assert stamp == ("2026-01-02 00:00:00 +00",)


def test_a_mart_spark_did_not_build_is_named(tmp_path: Path) -> None:
    settings = replace(get_settings(tmp_path / "home"), engine="spark")
    _spark_like_table(settings, "fct_impressions")
    with pytest.raises(FileNotFoundError, match=r"no table for fct_sessions under .*marts\.db"):
        publish_spark_marts(settings, {"fct_impressions": (), "fct_sessions": ()})


def test_the_marts_published_are_those_whose_post_hook_publishes_on_duckdb() -> None:
    manifest_path = DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest_path.exists():
        pytest.skip("no dbt manifest yet (dbt parse writes it)")
    marts = published_marts(json.loads(manifest_path.read_text()))
    assert {"fct_impressions", "fct_user_features_daily", "fct_batch_fates", "dim_users"} <= set(marts)
    assert not {"stg_landing__events", "fct_events", "int_users_current"} & set(marts)  # not published on DuckDB
    assert marts["fct_user_features_daily"] == ("event_timestamp",) and marts["fct_impressions"] == ()


def test_readers_see_a_spark_table_folder_like_a_published_file(tmp_path: Path) -> None:
    """Digests and scans over a folder (partition column included, _SUCCESS skipped) equal those of the same rows
    in one file: the training set's day keys and the online store's checks read Spark's tables this way."""
    settings = replace(get_settings(tmp_path / "home"), engine="spark")
    folder = _spark_like_table(settings, "fct_impressions")
    [mart] = publish_spark_marts(settings, {"fct_impressions": ()})
    day = 'cast("event_date" as date)'
    columns = ("impression_id", "event_date", "score")
    assert daily_digests(folder, day, columns) == daily_digests(mart.path, day, columns)
    assert len(daily_digests(folder, day, columns)) == 3
    assert file_digest(folder).split(":")[0] == "6"
    assert parquet_scan(folder) == ("read_parquet(?, hive_partitioning = true)", str(folder / "**" / "*.parquet"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parquet_scan(tmp_path / "nothing.parquet")


def test_an_engine_with_a_piece_missing_is_refused_naming_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both engines run the whole graph today; a piece listed as not supported yet makes `tailor run` (and the
    warehouse asset) refuse the engine with one message naming every piece and the way back to DuckDB."""
    assert refusal("duckdb") is None and refusal("spark") is None
    monkeypatch.setitem(NOT_SUPPORTED_YET, "spark", ("the snapshots", "publishing"))
    message = refusal("spark")
    assert message is not None
    assert message.startswith("TAILOR_ENGINE=spark: `tailor run` cannot run the whole graph on spark yet: ")
    assert "the snapshots; publishing." in message and "Unset TAILOR_ENGINE" in message
