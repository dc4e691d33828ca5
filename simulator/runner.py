"""Run a simulation: draw the world, play the days, deliver files by receive day, write the truth.

Files are per *delivery* day (the UTC day of received_at), like a collector that rolls its output at
midnight: an event that occurred late on Monday but arrived on Tuesday is in Tuesday's file. Events wait in
memory until their delivery day is complete, so a day's file is written once, whole, sorted by received_at.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from simulator.batch import EventBatch
from simulator.behaviour import Counters, day_of, simulate_day
from simulator.config import SimulationConfig
from simulator.faults import apply_faults
from simulator.policy import PolicyState
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
    "_truth": ("*.json", "*.parquet"),
}


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
    vocab = Vocabulary.of(world)
    files: dict[str, list[Path]] = {"events": [], "users": [], "content": []}
    recorder = TruthRecorder(world, out / "_truth")
    recorder.start()
    for day in range(config.days):
        _write_dimensions(world, vocab, out, day, files)

    state, counters = PolicyState.start(world), Counters()
    pending: dict[int, list[EventBatch]] = {}
    written = 0
    # Rendering and writing files overlaps with simulating the next day (numpy, Arrow and file writes
    # release the GIL). Each queue has one worker, so its files are written in order: output is deterministic.
    with _Queue("events") as writer, _Queue("truth") as truth_writer:
        for day in range(config.days):
            activity = simulate_day(world, day, state, counters, _rng(config, BEHAVIOUR_STREAM, day))
            rows, log, counters.event = apply_faults(
                activity.events, config, counters.event, _rng(config, FAULT_STREAM, day)
            )
            recorder.add_day(activity, log)
            truth_writer.submit(partial(recorder.stream_day, activity))
            _hold(pending, rows, world.start_ms)
            # Nothing that happens later can be received earlier, so today's delivery file is complete.
            written += _deliver(pending, day, world, vocab, out, files, writer)
            if progress is not None:
                progress(day + 1, config.days)
        for day in sorted(pending):
            written += _deliver(pending, day, world, vocab, out, files, writer)

    relative = {kind: [str(p.relative_to(out)) for p in paths] for kind, paths in files.items()}
    truth = recorder.finish(written, relative)
    counts = truth["counts"]
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
        truth_files=tuple(sorted((out / "_truth").iterdir())),
        seconds=time.perf_counter() - began,
    )


def _rng(config: SimulationConfig, stream: int, day: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, stream, day]))


def _prepare(out: Path, overwrite: bool) -> None:
    existing = [p for folder, globs in _OUTPUT_GLOBS.items() for g in globs for p in (out / folder).glob(g)]
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
        path = out / "events" / f"events-{stamp}.parquet"
        writer.submit(lambda: write_table(path, events_table(batch, vocab)))
    else:
        path = out / "events" / f"events-{stamp}.jsonl"
        writer.submit(lambda: write_bytes(path, events_jsonl(batch, vocab)))
    files["events"].append(path)
    return len(batch)


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
