"""Benchmark: two ways to refuse control characters in ids and labels, in CPU seconds of one DuckDB thread.

What it answers: the contract refuses a control character (U+0000-U+001F, U+007F-U+009F) anywhere in an id or a
label (docs/contract/README.md). The staging classification tests each such field's text with one RE2 class
(`regexp_matches`). The alternative measured here is one test of the raw JSON line first: JSON must escape C0
controls, so a line with no ``\\u00..``, ``\\b``, ``\\f``, ``\\n``, ``\\r`` or ``\\t`` escape and no raw DEL or C1
character cannot hold one, and only the lines it flags would need the per-field tests.

The simulated history's landed event lines are repeated to about ``--lines`` lines; six id and label fields are
extracted once (as the classification extracts every field once). Each variant is timed twice.

    .venv/bin/python bench/bench_control_chars.py --home /tmp/some-home   # a home where `tailor run` landed events
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

import duckdb

#: The contract's control characters as RE2 (tailor/contract/*.schema.json, `not: {pattern}`).
CONTROL = r"[\x{0}-\x{1f}\x{7f}-\x{9f}]"
#: A raw JSON line that may hold one: an escaped C0 control, or a raw DEL or C1 character.
RAW_PREFILTER = r"\\u00[0-1][0-9a-fA-F]|\\u007[fF]|\\u00[89][0-9a-fA-F]|\\[bfnrt]|[\x{7f}-\x{9f}]"
RESULTS = Path(__file__).resolve().parent / "results" / "control_chars.json"
FIELDS = ("event_id", "user_id", "content_id", "request_id", "surface", "experiment_id")


def _cpu(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    before = resource.getrusage(resource.RUSAGE_SELF)
    con.execute(sql).fetchall()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, required=True, help="A TAILOR_HOME with landed event batches.")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"Results file (default {RESULTS.relative_to(Path.cwd())})."
    )
    args = parser.parse_args()
    batches = args.home / "landing" / "events"
    if not any(batches.glob("batch-*.parquet")):
        parser.error(f"no landed event batches under {batches}: run `tailor run` on that home first")
    con = duckdb.connect()
    con.execute("set threads = 1")
    con.execute(f"create table landed as select raw from read_parquet('{batches}/batch-*.parquet')")
    [(landed,)] = con.execute("select count(*) from landed").fetchall()
    con.execute(f"create table lines as select raw from landed, range({max(1, args.lines // landed)})")
    paths = "[" + ", ".join(f"'$.{name}'" for name in FIELDS) + "]"
    con.execute(
        f"create table f as select raw, json_extract_string(raw, {paths}) as t from lines where json_valid(raw)"
    )
    [(lines,)] = con.execute("select count(*) from f").fetchall()
    per_field = " or ".join(f"coalesce(regexp_matches(t[{i}], '{CONTROL}'), false)" for i in range(1, len(FIELDS) + 1))
    raw = f"regexp_matches(raw, '{RAW_PREFILTER}')"
    variants = {
        "per_field": f"select count(*) from f where {per_field}",
        "raw_prefilter": f"select count(*) from f where {raw}",
        "raw_prefilter_then_fields": f"select count(*) from f where {raw} and ({per_field})",
    }
    results = {name: [round(_cpu(con, sql), 3) for _ in range(2)] for name, sql in variants.items()}
    report = {"lines": lines, "fields": list(FIELDS), "cpu_s": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
