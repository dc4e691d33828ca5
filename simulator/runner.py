"""Run a simulation: draw the world, play the days, deliver files by receive day, write the truth.

Files are per *delivery* day (the UTC day of received_at), like a collector that rolls its output at
midnight: an event that occurred late on Monday but arrived on Tuesday is in Tuesday's file. Events wait in
memory until their delivery day is complete, so a day's file is written once, whole, sorted by received_at.

A run can be continued (``continue_simulation``): the world is re-derived from truth.json's config and seed,
extended day by day, and played on from the day after the last one, from the state the previous run saved
(``simulator.state``). New days add new files; files already written are never changed. A delivery day that
already has a file (late events of the previous run land after its last day) gets a second one,
``events-<date>.2.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from simulator.batch import EventBatch
from simulator.behaviour import day_of, simulate_day
from simulator.closed_loop import CLOSED_LOOP_STREAM, POPULARITY_DAYS, request_truth
from simulator.config import SimulationConfig, config_from_dict
from simulator.extend import extend_world
from simulator.faults import apply_faults
from simulator.serving import NOT_EXPOSED, CachedPages, Serving
from simulator.state import RunState
from simulator.truth import TruthRecorder
from simulator.world import BEHAVIOUR_STREAM, FAULT_STREAM, World, build_world
from simulator.writer import (
    Vocabulary,
    content_jsonl,
    events_jsonl,
    events_table,
    users_jsonl,
    versions_on,
    write_bytes,
    write_table,
)

_OUTPUT_GLOBS = {
    "events": ("events-*.jsonl", "events-*.parquet"),
    "users": ("users-*.jsonl",),
    "content": ("content-*.jsonl",),
    "_truth": ("*.json", "*.parquet", "continued/*.parquet", "state/*.parquet", "state/*.json"),
}
#: Fields a continued run may change: how events are delivered and the planted drift, never the world.
CONTINUE_CHANGES: frozenset[str] = frozenset(
    {
        "receive_delay_mean_seconds",
        "duplicate_rate",
        "duplicate_exact_share",
        "duplicate_max_delay_hours",
        "late_rate",
        "late_min_hours",
        "late_max_hours",
        "malformed_rate",
        "malformed_kind_weights",
        "drift",
        "write_impression_truth",
    }
)


@dataclass(frozen=True)
class SimulationResult:
    """What a run wrote: counts (all exact, equal to those in truth.json) and the paths.

    Attributes:
        events_written: Event rows in the event files, faults included.
        clean_events: Distinct well-formed events (what a perfect pipeline keeps).
        clean_events_by_type: Clean events per event type.
        duplicates: Extra deliveries of clean events.
        late: Clean events received one to three days after they occurred (in a later day's file).
        malformed: Malformed rows by kind.
        users: Users in the world (every one has a row in the users files).
        content_items: Items in the catalog.
        sessions: Sessions simulated.
        files_written: Data files written (events, users, content; not the truth).
        seconds: Wall time of the run (the only non-deterministic number; not in the truth).
    """

    out_dir: Path
    events_written: int
    clean_events: int
    clean_events_by_type: dict[str, int]
    duplicates: int
    late: int
    malformed: dict[str, int]
    users: int
    content_items: int
    sessions: int
    files_written: int
    event_files: tuple[Path, ...]
    user_files: tuple[Path, ...]
    content_files: tuple[Path, ...]
    truth_path: Path
    truth_files: tuple[Path, ...]
    seconds: float = field(default=0.0, compare=False)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (paths as strings, file lists as counts plus the folder) for CLIs and logs."""
        return {
            "out_dir": str(self.out_dir),
            "events_written": self.events_written,
            "clean_events": self.clean_events,
            "clean_events_by_type": dict(self.clean_events_by_type),
            "duplicates": self.duplicates,
            "late": self.late,
            "malformed": dict(self.malformed),
            "malformed_total": self.malformed_total,
            "users": self.users,
            "content_items": self.content_items,
            "sessions": self.sessions,
            "files_written": self.files_written,
            "event_files": len(self.event_files),
            "user_files": len(self.user_files),
            "content_files": len(self.content_files),
            "truth_path": str(self.truth_path),
            "seconds": round(self.seconds, 3),
        }


def simulate(
    config: SimulationConfig,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> SimulationResult:
    """Generate a synthetic history under ``out_dir`` (byte-identical for the same config).

    Args:
        config: What to simulate.
        out_dir: Folder for ``events/``, ``users/``, ``content/`` and ``_truth/``; created if needed.
        progress: Called as ``progress(done_days, total_days)`` after each simulated day.
        overwrite: Replace the files of an earlier simulation in ``out_dir`` (only files named like the
            simulator's; anything else is left alone).

    Raises:
        FileExistsError: ``out_dir`` already holds simulator output and ``overwrite`` is false.
    """
    began = time.perf_counter()
    out = Path(out_dir)
    _prepare(out, overwrite)
    world = build_world(config)
    recorder = TruthRecorder(world, out / "_truth")
    return _play(world, out, RunState.start(world), recorder, None, progress, began)


def continue_simulation(
    out_dir: Path,
    days: int,
    *,
    pages: pa.Table | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> SimulationResult:
    """Play ``days`` more days of the simulation in ``out_dir``, from the day after its last one.

    The world is re-derived from ``_truth/truth.json`` (config and seed) and extended; the run starts from the
    state the previous run saved (``_truth/state/``). Same folder, same arguments: the same new files, byte for
    byte. Files already there are left as they are; the truth gains the new days (``_truth/continued/``) and
    truth.json a ``continuations`` entry and the ``closed_loop`` summary.

    Args:
        out_dir: Folder of an earlier ``simulate`` (or continued) run.
        days: Days to add (at least 1).
        pages: Pages to serve instead of the logging policy for the users (and surfaces) they cover: a table or
            a Parquet file with the columns of ``simulator.serving.REQUIRED_COLUMNS`` (the batch
            recommendations). ``None`` continues with the built-in logging policy.
        progress: Called as ``progress(done_days, days)`` after each day.
        changes: Config fields to change from now on (only ``CONTINUE_CHANGES``: fault rates, the drift knob,
            impression truth), e.g. ``{"duplicate_rate": 0.0}``.

    Raises:
        FileNotFoundError: ``out_dir`` holds no simulation, or one made before runs could be continued.
        ValueError: ``days`` < 1, or a change is not allowed or not valid.
        simulator.serving.PagesError: the pages cannot be served (the message says why).
    """
    began = time.perf_counter()
    out = Path(out_dir)
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    truth_path = out / "_truth" / "truth.json"
    if not truth_path.is_file():
        raise FileNotFoundError(f"{out} holds no simulation to continue (no _truth/truth.json): generate one first")
    doc = json.loads(truth_path.read_text())
    config = config_from_dict(doc["config"])
    disallowed = sorted(set(changes or {}) - CONTINUE_CHANGES)
    if disallowed:
        raise ValueError(
            f"a continued run cannot change {disallowed}: the world is fixed by the first run; it may change "
            f"only {sorted(CONTINUE_CHANGES)}"
        )
    # The previous segment's changes (e.g. drift) carry on unless changed again.
    for earlier in doc.get("continuations", []):
        config = _changed(config, earlier.get("config_changes", {}))
    config = config.with_changes(**(changes or {}))
    world = extend_world(build_world(config), RunState.next_day_in(out / "_truth") + days)
    state = RunState.load(out / "_truth", world.days, len(world.users), len(world.catalog))
    serving = None
    if pages is not None:
        first = state.next_day
        cached = (
            CachedPages.from_table(pages, world, first)
            if isinstance(pages, pa.Table)
            else CachedPages.read(Path(pages), world, first)
        )
        serving = Serving(cached, experiment=len(config.experiments), exposed_at=state.exposed_at)
    recorder = TruthRecorder(world, out / "_truth", continued_from=state.next_day, changes=dict(changes or {}))
    return _play(world, out, state, recorder, serving, progress, began)


def _changed(config: SimulationConfig, changes: Mapping[str, Any]) -> SimulationConfig:
    """``config`` with changes as truth.json records them (the drift as a mapping)."""
    return config_from_dict({**config.to_dict(), **changes}) if changes else config


def _play(
    world: World,
    out: Path,
    state: RunState,
    recorder: TruthRecorder,
    serving: Serving | None,
    progress: Callable[[int, int], None] | None,
    began: float,
) -> SimulationResult:
    """Play the days ``state.next_day .. world.days - 1``, deliver their files, write the truth and the state."""
    config = world.config
    first, days = state.next_day, world.days
    continued = first > 0
    vocab = Vocabulary.of(world, serving.pages if serving else None)
    files: dict[str, list[Path]] = {"events": [], "users": [], "content": []}
    recorder.start(serving)
    for day in range(first, days):
        _write_dimensions(world, vocab, out, day, files)
    counters = state.counters
    pending: dict[int, list[EventBatch]] = {}
    written = 0
    # Rendering and writing files overlaps with simulating the next day (numpy, Arrow and file writes
    # release the GIL). Each queue has one worker, so its files are written in order: output is deterministic.
    with _Queue("events") as writer, _Queue("truth") as truth_writer:
        for day in range(first, days):
            activity = simulate_day(world, day, state.policy, counters, _rng(config, BEHAVIOUR_STREAM, day), serving)
            assert activity.requests is not None
            if serving is not None:
                fresh = (state.exposed_variant == "") & (state.exposed_at != NOT_EXPOSED)
                names = np.asarray(serving.pages.variants, dtype=object)
                state.exposed_variant[fresh] = names[serving.pages.user_variant[fresh]]
            requests = None
            if continued:
                requests = request_truth(
                    world,
                    day,
                    state.policy,
                    state.consumed,
                    activity.requests,
                    serving.pages if serving else None,
                    state.exposed_at,
                    state.exposed_variant,
                    _rng(config, CLOSED_LOOP_STREAM, day),
                )
            detail = activity.requests
            clicked = detail.imp_clicked
            state.consumed.add(detail.user[detail.imp_request[clicked]], detail.imp_item[clicked])
            rows, log, counters.event = apply_faults(
                activity.events, config, counters.event, _rng(config, FAULT_STREAM, day)
            )
            recorder.add_day(activity, log)
            truth_writer.submit(partial(recorder.stream_day, activity, requests))
            _hold(pending, rows, world.start_ms)
            # Nothing that happens later can be received earlier, so today's delivery file is complete.
            written += _deliver(pending, day, world, vocab, out, files, writer)
            if progress is not None:
                progress(day + 1 - first, days - first)
        for day in sorted(pending):
            written += _deliver(pending, day, world, vocab, out, files, writer)

    state.next_day = days
    state.save(out / "_truth", max(config.policy_popularity_window_days, POPULARITY_DAYS))
    relative = {kind: [str(p.relative_to(out)) for p in paths] for kind, paths in files.items()}
    truth = recorder.finish(written, relative)
    counts = truth["counts"] if not continued else truth["continuations"][-1]["counts"]
    return SimulationResult(
        out_dir=out,
        events_written=written,
        clean_events=counts["clean_events"],
        clean_events_by_type=counts["clean_events_by_type"],
        duplicates=counts["duplicates"],
        late=counts["late"],
        malformed=counts["malformed"],
        users=counts["users"],
        content_items=counts["content_items"],
        sessions=counts["sessions"],
        files_written=sum(len(p) for p in files.values()),
        event_files=tuple(files["events"]),
        user_files=tuple(files["users"]),
        content_files=tuple(files["content"]),
        truth_path=out / "_truth" / "truth.json",
        truth_files=tuple(sorted(p for p in (out / "_truth").rglob("*") if p.is_file())),
        seconds=time.perf_counter() - began,
    )


def _rng(config: SimulationConfig, stream: int, day: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, stream, day]))


def existing_output(out: Path) -> list[Path]:
    """The files of an earlier simulation in ``out`` (what ``simulate`` refuses to replace without overwrite)."""
    return [p for folder, globs in _OUTPUT_GLOBS.items() for g in globs for p in (out / folder).glob(g)]


def next_date(out: Path) -> date:
    """The first day a continued run in ``out`` would play (the day after the simulation's last one).

    Raises:
        FileNotFoundError: ``out`` holds no simulation, or one made before runs could be continued.
    """
    truth_path = out / "_truth" / "truth.json"
    if not truth_path.is_file():
        raise FileNotFoundError(f"{out} holds no simulation to continue (no _truth/truth.json): generate one first")
    start = config_from_dict(json.loads(truth_path.read_text())["config"]).start_date
    return start + timedelta(days=RunState.next_day_in(out / "_truth"))


def _prepare(out: Path, overwrite: bool) -> None:
    existing = existing_output(out)
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds simulator output (e.g. {existing[0]}). Choose an empty folder, or pass "
            "overwrite=True to replace it."
        )
    for path in existing:
        path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _hold(pending: dict[int, list[EventBatch]], rows: EventBatch, start_ms: int) -> None:
    """File rows under their delivery day (the UTC day of received_at)."""
    if len(rows) == 0:
        return
    delivery = day_of(rows.received_ms, start_ms)
    order = np.argsort(delivery, kind="stable")
    days, starts = np.unique(delivery[order], return_index=True)
    bounds = [*starts[1:], len(order)]
    for d, lo, hi in zip(days, starts, bounds, strict=True):
        pending.setdefault(int(d), []).append(rows.take(order[lo:hi]))


def _deliver(
    pending: dict[int, list[EventBatch]],
    day: int,
    world: World,
    vocab: Vocabulary,
    out: Path,
    files: dict[str, list[Path]],
    writer: _Queue,
) -> int:
    """Queue one delivery day's event file (rows sorted by received_at); return the rows it will hold."""
    parts = pending.pop(day, [])
    batch = EventBatch.concat(parts)
    if len(batch) == 0:
        return 0  # no file: an empty file is not a valid delivery for ingestion
    batch = batch.take(np.argsort(batch.received_ms, kind="stable"))
    stamp = _date(world, day).isoformat()
    if world.config.format == "parquet":
        path = _free(out / "events", f"events-{stamp}", ".parquet")
        writer.submit(lambda: write_table(path, events_table(batch, vocab)))
    else:
        path = _free(out / "events", f"events-{stamp}", ".jsonl")
        writer.submit(lambda: write_bytes(path, events_jsonl(batch, vocab)))
    files["events"].append(path)
    return len(batch)


def _free(folder: Path, stem: str, suffix: str) -> Path:
    """``stem + suffix`` in ``folder``, or ``stem.N + suffix`` with the first free N >= 2 when it exists (a
    continued run's delivery day that already got late events of the previous run)."""
    path, number = folder / f"{stem}{suffix}", 1
    while path.exists():
        number += 1
        path = folder / f"{stem}.{number}{suffix}"
    return path


class _Queue:
    """A one-thread work queue that runs jobs in order and holds back its producer when it falls behind
    (so finished days do not pile up in memory). Leaving the ``with`` block waits for every job and
    re-raises the first failure."""

    def __init__(self, name: str, depth: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tailor-sim-{name}")
        self._jobs: list[Future[None]] = []
        self._depth = depth

    def submit(self, job: Callable[[], None]) -> None:
        for done in [j for j in self._jobs if j.done()]:
            self._jobs.remove(done)
            done.result()
        if len(self._jobs) >= self._depth:
            self._jobs.pop(0).result()
        self._jobs.append(self._pool.submit(job))

    def __enter__(self) -> _Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for job in self._jobs:
                job.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _write_dimensions(world: World, vocab: Vocabulary, out: Path, day: int, files: dict[str, list[Path]]) -> None:
    """The users and content files of one day (skipped when the day has no rows)."""
    stamp = _date(world, day).isoformat()
    rows = versions_on(world.user_versions, day)
    if len(rows):
        path = out / "users" / f"users-{stamp}.jsonl"
        write_bytes(path, users_jsonl(world, vocab, rows))
        files["users"].append(path)
    rows = versions_on(world.content_versions, day)
    if len(rows):
        path = out / "content" / f"content-{stamp}.jsonl"
        write_bytes(path, content_jsonl(world, vocab, rows))
        files["content"].append(path)


def _date(world: World, day: int) -> date:
    return world.config.start_date + timedelta(days=day)
