"""`tailor stream`: publish events to the Redis Stream, consume them into the online store, show the state.

Heavy imports (redis, duckdb, feast) happen inside the commands, so `tailor --help` stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from cli.common import INTERRUPTED_STATUS, emit_json, fail, load_settings, plural
from tailor.stream.config import (
    PUSH_SOURCE,
    RedisURLError,
    StreamConfig,
    check_redis_url,
    default_redis_url,
    default_stream,
)

if TYPE_CHECKING:
    from datetime import timedelta

    from tailor.stream.broker import Broker
    from tailor.stream.consumer import ConsumeStats


def _check_url(url: str) -> None:
    """A --redis / TAILOR_REDIS_URL that is not a Redis URL: one error line naming where it came from."""
    given = click.get_current_context().get_parameter_source("redis_url")
    try:
        check_redis_url(url, "--redis" if given == click.core.ParameterSource.COMMANDLINE else "TAILOR_REDIS_URL")
    except RedisURLError as exc:
        fail(str(exc))


def _broker(url: str, stream: str, group: str, wait_s: float = 0.0) -> Broker:
    """A connected broker, or a clear error when the URL is not one or Redis cannot be reached (within ``wait_s``
    seconds: `consume` waits for a Redis that is not up yet as it rides out one that went away; inf: for ever)."""
    import time

    import redis

    from tailor.stream.broker import Broker, connect

    _check_url(url)
    # Redis takes an empty key: a stream no other command names by default (a trial).
    if not stream.strip():
        fail(f"--stream is empty: give the stream's key, or leave --stream out for {default_stream()!r}")
    if not group.strip():
        fail(f"--group is empty: give the consumer group a name, or leave --group out for {StreamConfig().group!r}")
    client = connect(url)
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError as exc:
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait_s:g} s (--give-up-after)" if wait_s > 0 else ""
                port = client.connection_pool.connection_kwargs.get("port", 6379)
                fail(
                    f"cannot reach Redis at {url}{waited} ({exc}). Start one (e.g. `redis-server --port {port} "
                    "--bind 127.0.0.1`), or point --redis / TAILOR_REDIS_URL at yours."
                )
            if not said:
                said = True
                limit = "for ever" if math.isinf(wait_s) else f"up to {wait_s:g} s (--give-up-after)"
                click.echo(f"note: Redis at {url} does not answer yet ({exc}); waiting {limit}", err=True)
            try:
                time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
            except KeyboardInterrupt:
                fail(f"stopped while waiting for Redis at {url}; nothing was consumed", status=INTERRUPTED_STATUS)
        except redis.ResponseError as exc:  # reached, but it refused the connection's setup (a database out of range)
            fail(
                f"Redis at {url} answered but refused the connection: {exc}. A database number must be below the "
                "server's `databases` setting (16 by default): use e.g. /0, or point --redis / TAILOR_REDIS_URL "
                "elsewhere."
            )
    return Broker(client, StreamConfig(stream=stream, group=group))


@contextlib.contextmanager
def _lost_redis(url: str, doing: str, after: str) -> Iterator[None]:
    """Turn Redis going away in the middle of a command into one error line: what was being done, what state
    it leaves (``after``), what to do."""
    from tailor.stream.broker import connection_lost

    try:
        yield
    except Exception as exc:
        if not connection_lost(exc):
            raise
        cause = " ".join(str(exc).split())
        fail(f"lost the connection to Redis at {url} while {doing} ({cause}). {after} Start Redis again and rerun.")


def _common(command: Any) -> Any:
    """--redis, --stream and --group, shared by every subcommand."""
    defaults = StreamConfig()
    command = click.option("--group", default=defaults.group, show_default=True, help="Consumer group.")(command)
    command = click.option(
        "--stream",
        default=default_stream,
        show_default=f"TAILOR_SERVICE_STREAM or {defaults.stream}",
        help="Redis Stream key (the service's, TAILOR_SERVICE_STREAM, when set).",
    )(command)
    return click.option(
        "--redis",
        "redis_url",
        default=default_redis_url,
        show_default="TAILOR_REDIS_URL or " + "redis://127.0.0.1:6379/0",
        help="Redis holding the stream.",
    )(command)


@click.group()
def stream() -> None:
    """Stream events into the online store: recent-activity features within seconds of a click.

    Producers `publish` events to a Redis Stream; one `consume` process per group keeps 30-minute windows per
    user and pushes them to the Feast push source recent_activity_push.
    """


class _NotText(Exception):
    """A line of the input is not UTF-8 text (a binary file, or text in another encoding)."""

    def __init__(self, source: str, line: int, error: UnicodeDecodeError) -> None:
        super().__init__(f"{source}: line {line} is not UTF-8 text ({error.reason} at byte {error.start} of the line)")


def _text_lines(handle: BinaryIO, source: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of ``handle`` with their 1-based line numbers, stripped, decoded as UTF-8.

    Raises:
        _NotText: a line is not UTF-8, naming the source and the line number.
    """
    for number, raw in enumerate(handle, start=1):
        try:
            # A byte-order mark opens the first line of a file some editors save ("UTF-8 with BOM"): `tailor ingest`
            # reads past it, and so does publish (it refused the line as invalid_json: a trial).
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
        except UnicodeDecodeError as exc:
            raise _NotText(source, number, exc) from None
        if line:
            yield number, line


def _check_text(paths: tuple[Path, ...]) -> None:
    """Read every file through before anything is published, so a file that is not text costs nothing.

    Raises:
        _NotText: the first line of a file that is not UTF-8.
        click.ClickException (through `fail`): a file that is not JSON Lines by its name or its first bytes (a
            Parquet file, a .csv, UTF-16 text), said as `tailor ingest` says it (a trial: publish parsed a CSV as
            JSON and called a Parquet file's line 5 "not UTF-8"), or a damaged .gz.
    """
    from tailor.ingest.files import open_bytes  # heavy (duckdb, pyarrow): only when a command runs

    for path in paths:
        if str(path) != "-":
            try:
                _refuse_not_jsonl(path)
                with open_bytes(path) as handle:
                    for _ in _text_lines(handle, str(path)):
                        pass
            except (OSError, EOFError, zlib.error) as exc:  # a truncated or damaged .gz
                fail(f"{path}: cannot be read ({exc}). Is it a complete file? Nothing was published.")


def _refuse_not_jsonl(path: Path) -> None:
    """Refuse a file `tailor stream publish` cannot read as JSON Lines: by its name first (a .csv, a .parquet),
    then by its first bytes (Parquet's PAR1 marker, UTF-16 or UTF-32 text), each with what to do instead."""
    from tailor.ingest.files import JSONL_SUFFIXES, PARQUET_SUFFIXES, open_bytes, wide_encoding, wide_text

    name = path.name.lower()
    reads = "`tailor stream publish` reads JSON Lines (one JSON event per line)"
    if name.endswith(PARQUET_SUFFIXES):
        fail(f"{path}: a Parquet file: {reads}. Land Parquet with `tailor ingest {path}`. Nothing was published.")
    if not name.endswith(JSONL_SUFFIXES):
        fail(f"{path}: unsupported file type: {reads}: {', '.join(JSONL_SUFFIXES)}, or stdin. Nothing was published.")
    with open_bytes(path) as handle:  # a .gz that cannot be read: `_check_text` says so
        head = handle.read(4)
    if head == b"PAR1":
        unzip = "gunzip it, " if name.endswith(".gz") else ""
        fail(
            f"{path}: a Parquet file under a JSON Lines name: {reads}. To land it, {unzip}rename it to end in "
            ".parquet and run `tailor ingest` on it. Nothing was published."
        )
    encoding = wide_encoding(head)
    if encoding is not None:
        fail(f"{path}: {wide_text(encoding)}, then publish it again. Nothing was published.")


def _lines(paths: tuple[Path, ...], broken: list[_NotText], places: list[tuple[str, int]]) -> Iterator[str]:
    """The events' lines of the files (stdin for none or `-`); stops at a line that is not UTF-8 (only stdin's
    can be one after `_check_text`) and appends its error to ``broken``, so the lines before it are still
    published and counted. Each line's file and line number are appended to ``places`` (blank lines are skipped,
    so the n-th event is not the n-th line)."""
    from tailor.ingest.files import open_bytes

    try:
        for path in paths or (Path("-"),):
            source = "stdin" if str(path) == "-" else str(path)
            with contextlib.nullcontext(sys.stdin.buffer) if source == "stdin" else open_bytes(path) as handle:
                for number, line in _text_lines(handle, source):
                    places.append((source, number))
                    yield line
    except _NotText as exc:
        broken.append(exc)


def _located(report: dict[str, Any], places: list[tuple[str, int]]) -> dict[str, Any]:
    """The publish report with each refused event's ``file`` and ``line`` beside its ordinal ``event``."""
    rejected = []
    for rejection in report["rejected"]:
        source, line = places[rejection["event"] - 1]
        rejected.append({**rejection, "file": source, "line": line})
    return {**report, "rejected": rejected}


_TEXT_HINT = (
    "Events are published from JSON Lines: one JSON event per line, in UTF-8 (a binary file, e.g. an image, or "
    "text in another encoding cannot be read; convert text with e.g. `iconv -f LATIN1 -t UTF-8`)"
)


@stream.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@_common
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def publish(paths: tuple[Path, ...], redis_url: str, stream: str, group: str, as_json: bool) -> None:
    """Append events (JSON Lines files, or stdin when no PATHS / `-`) to the stream.

    Each event is checked against the event contract; valid ones are appended even when others are refused.
    Exits 1 when any event was refused, listing each with the contract's reason, or when a file is not UTF-8
    text (then nothing is published).
    """
    from tailor.stream.producer import publish as publish_events

    try:
        _check_text(paths)
    except _NotText as exc:
        fail(f"{exc}. {_TEXT_HINT}. Nothing was published.")
    broker = _broker(redis_url, stream, group)
    broken: list[_NotText] = []
    places: list[tuple[str, int]] = []
    with _lost_redis(
        redis_url,
        "publishing",
        "The events appended before it stay in the stream; publishing the same input again is harmless (an event "
        "is counted once).",
    ):
        report = publish_events(broker, _lines(paths, broken, places))
    located = _located(report.as_dict(), places)
    if broken:  # stdin: the lines before the broken one were published
        before = (
            f"the {len(report.published):,} valid events before it were published (publishing them again is "
            "harmless: an event is counted once)"
            if report.published
            else "nothing was published"
        )
        fail(f"{broken[0]}. {_TEXT_HINT}; {before}.", data=located)
    if as_json and not report.rejected:
        emit_json(located)
    elif not as_json:
        count = len(report.published)
        click.echo(
            f"published {count:,} event{'' if count == 1 else 's'} to {stream}; refused {len(report.rejected):,}"
        )
        if not report.published and not report.rejected:
            click.echo("note: the input held no events (empty, or blank lines only)", err=True)
        several = len(paths) > 1  # the same file given twice is two inputs too
        for rejection in located["rejected"][:50]:
            where = f"{rejection['file']} line {rejection['line']}" if several else f"line {rejection['line']}"
            click.echo(f"  {where}: {rejection['reason']}: {rejection['detail']}", err=True)
        if len(report.rejected) > 50:
            click.echo(f"  ... and {len(report.rejected) - 50:,} more (use --json for all)", err=True)
    if report.rejected:
        count = len(report.published)
        valid = (
            (f"the {count:,} valid ones were" if count != 1 else "the 1 valid one was")
            if report.published
            else "none of the input was valid, so nothing was published"
        )
        fail(
            f"{plural(len(report.rejected), 'event')} {'breaks' if len(report.rejected) == 1 else 'break'} the event "
            f"contract (tailor/contract/event.schema.json) and {'was' if len(report.rejected) == 1 else 'were'} not "
            f"published; {valid}. Fix the refused lines and publish them again (an event published twice is "
            "counted once).",
            data=located,
        )


@stream.command()
@_common
@click.option("--consumer", default=socket.gethostname, show_default="this host's name", help="Name in the group.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True, help="Entries per push.")
@click.option("--once", is_flag=True, help="Process what is in the stream now, then exit.")
@click.option("--max-idle", type=click.FloatRange(min=0), default=None, help="Exit after this many idle seconds.")
@click.option(
    "--give-up-after",
    type=click.FloatRange(min=0),
    default=None,
    help="After losing Redis, reconnect (backing off 0.5 s doubling to 30 s) for this many seconds, then exit 1; "
    "a Redis not up yet at the start is waited for as long. `inf` never gives up. Default: 300, or 0 with --once "
    "(a lost connection is an error at once).",
)
@click.option(
    "--repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Feast repository (default: feature_repo/ of this project).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's counts as JSON when it ends.")
def consume(
    redis_url: str,
    stream: str,
    group: str,
    consumer: str,
    batch_size: int,
    once: bool,
    max_idle: float | None,
    give_up_after: float | None,
    repo: Path | None,
    as_json: bool,
) -> None:
    """Read the stream as CONSUMER of GROUP and push recent-activity rows to the Feast online store.

    Runs until Ctrl-C / SIGTERM (finishing the batch in hand), or --once / --max-idle. A restart resumes
    where the last run stopped: pending entries are processed again and windows are rebuilt from the stream.
    When Redis goes away it reconnects and resumes the same way, for up to --give-up-after seconds; a Redis that is
    not up yet when it starts is waited for as long.
    """
    from datetime import timedelta

    from tailor.stream.broker import BrokerUnreachable, StreamBusy
    from tailor.stream.catalog import Catalog
    from tailor.stream.consumer import Consumer, PushFailed
    from tailor.stream.sink import FeastSink, open_store

    if give_up_after is not None and math.isnan(give_up_after):
        fail("--give-up-after must be a number of seconds (0 gives up at once, inf never), got nan.")
    # Our progress at INFO; other libraries (Feast logs every registry refresh) only when something is wrong.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("tailor").setLevel(logging.INFO)
    give_up = (0.0 if once else 300.0) if give_up_after is None else give_up_after
    _check_url(redis_url)  # a usage error first, then the feature store's configuration, then Redis itself
    if repo is None:  # the project's store: a configuration that cannot work is said first (a trial's traceback;
        # a re-check trial waited out --give-up-after for the stream's Redis before hearing of it)
        from ml.features.repo import registry_problem
        from orchestration.lib.engine_support import refusal
        from tailor.feature_store import feature_store_problem

        settings = load_settings()
        problem = refusal(settings.engine) or feature_store_problem(settings) or registry_problem(settings)
        if problem:
            fail(problem)
    broker = _broker(redis_url, stream, group, wait_s=give_up)
    store = open_store(repo)
    try:
        store.get_data_source(PUSH_SOURCE)
    except Exception as exc:  # feast raises its own "not found" types, which vary by registry
        fail(
            f"the Feast registry has no push source {PUSH_SOURCE!r} ({type(exc).__name__}). Register the feature "
            "repository first: `feast apply` in feature_repo/ (or `tailor run`)."
        )

    stopping: list[int] = []

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker = Consumer(
        broker,
        FeastSink(store, PUSH_SOURCE),
        name=consumer,
        catalog=Catalog(load_settings().marts_dir / "dim_content.parquet"),
        batch_size=batch_size,
        reconnect_for=None if math.isinf(give_up) else timedelta(seconds=give_up),
    )
    click.echo(f"consuming {stream} as {consumer} in group {group}{'' if once else ' (Ctrl-C to stop)'}", err=True)
    try:
        stats = worker.run(until_idle=0 if once else max_idle, should_stop=lambda: bool(stopping))
    except StreamBusy as exc:
        fail(str(exc))
    except PushFailed as exc:  # e.g. the online store's tables are gone: one line, not the store's traceback
        fail(
            f"{exc}. Nothing of it is lost: the entries read are not acknowledged and stay pending in group "
            f"{group!r} for the next run. Check the feature store (`tailor run` applies and fills it again), then "
            "rerun `tailor stream consume`",
            data=worker.describe(),
        )
    except BrokerUnreachable as exc:
        cause = " ".join(str(exc.cause).split())
        what = (
            f"lost the connection to Redis at {redis_url} ({cause})"
            if give_up == 0
            else f"Redis at {redis_url} has been unreachable for {exc.waited:.0f} s ({cause}); gave up "
            f"(--give-up-after {give_up:g})"
        )
        fail(
            f"{what}. Nothing acknowledged is lost: entries read but not acknowledged stay pending in group "
            f"{group!r} and the next run processes them. Start Redis again (with its data: AOF or RDB keeps the "
            "stream), then rerun `tailor stream consume`"
            + ("." if give_up == 0 else " (a longer --give-up-after, or inf, rides out longer outages)."),
            data=worker.describe(),
        )
    if as_json:
        emit_json(worker.describe())
    else:
        why = _ignored_why(stats, worker.window.length)
        click.echo(
            f"read {stats.read:,}  counted {stats.counted:,}  ignored {stats.ignored:,}{why}  "
            f"dead letters {stats.dead_lettered:,}  recovered {stats.recovered:,}  rebuilt {stats.rebuilt:,}  "
            f"pushes {stats.pushes:,} ({stats.rows_pushed:,} rows)"
            + (f"  reconnects {stats.reconnects:,}" if stats.reconnects else "")
        )


def _ignored_why(stats: ConsumeStats, window: timedelta) -> str:
    """Why the ignored events were ignored, e.g. `` (2 older than the 30-minute window)``; empty when none were."""
    reasons = [
        (stats.ignored_too_old, f"older than the {window.total_seconds() / 60:g}-minute window by the clock"),
        (stats.ignored_repeated, "counted already"),
        (stats.ignored_not_counted, "exposure(s), which no feature counts"),
    ]
    said = [f"{n:,} {why}" for n, why in reasons if n]
    return f" ({', '.join(said)})" if said else ""


@stream.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(redis_url: str, stream: str, group: str, as_json: bool) -> None:
    """Show the stream's length, the group's pending entries and lag, dead letters and the active consumer."""
    broker = _broker(redis_url, stream, group)
    with _lost_redis(redis_url, "reading the stream's state", "Nothing was changed."):
        state = broker.status()
    if as_json:
        emit_json(state)
        return
    for key in ("stream", "group", "consumer", "length", "pending", "lag", "last_delivered", "dead_letters"):
        click.echo(f"{key:>15}  {state[key] if state[key] is not None else '-'}")


@stream.command("dead-letters")
@_common
@click.option("--replay", "do_replay", is_flag=True, help="Publish the dead letters' events again (after a fix).")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def dead_letters_command(redis_url: str, stream: str, group: str, do_replay: bool, as_json: bool) -> None:
    """List the entries the consumer could not process, with the reason; --replay publishes them again."""
    from tailor.stream.dead_letters import dead_letters, replay

    broker = _broker(redis_url, stream, group)
    if do_replay:
        with _lost_redis(
            redis_url,
            "replaying dead letters",
            "Some may be published again and still listed as dead letters; replaying again is harmless (an event "
            "is counted once).",
        ):
            replayed, still_dead, empty = replay(broker)
        if as_json:
            emit_json(
                {
                    "replayed": replayed,
                    "still_dead": [d.as_dict() for d in still_dead],
                    "nothing_to_replay": [d.as_dict() for d in empty],
                }
            )
            return
        line = f"replayed {plural(replayed, 'event')}; {len(still_dead):,} still break the contract and stay dead"
        if empty:
            reasons = ", ".join(sorted({d.reason for d in empty}))
            one = len(empty) == 1
            line += (
                f"; {len(empty):,} {'holds' if one else 'hold'} no event to replay ({reasons}) and "
                f"{'stays' if one else 'stay'} as a record"
            )
        click.echo(line)
        return
    with _lost_redis(redis_url, "reading the dead letters", "Nothing was changed."):
        letters = dead_letters(broker)
    if as_json:
        emit_json([d.as_dict() for d in letters])
        return
    if not letters:
        click.echo(f"no dead letters on {broker.config.dead_letters}")
    for d in letters:
        click.echo(f"{d.source_id}  {d.reason}: {d.detail}  (deliveries {d.deliveries}, dead at {d.dead_at})")
        click.echo(f"    {d.event[:200]}")
