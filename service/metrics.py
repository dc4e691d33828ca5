"""The service's Prometheus metrics: in a registry of its own per app, or across worker processes.

Names follow Prometheus' conventions (``_total`` counters, base units: seconds). Labels are bounded: a route is its
template (``/recommendations/{user_id}``), never the user's path, and a fallback reason is one of a few kinds
(`reason_kind`), never the free text of `Recommendation.fallback_reason`.

Two modes:

- One process (one worker, and the tests' in-process apps): each app keeps its metrics in its own registry and
  /metrics renders that registry.
- Several workers (`tailor serve --workers N`): prometheus-client's multiprocess mode. `worker_metrics_env` gives
  the workers a fresh folder in ``PROMETHEUS_MULTIPROC_DIR`` (read by prometheus-client when it is imported, so it
  must be in the environment before a worker starts) and in ``TAILOR_SERVICE_METRICS_DIR``. Every worker writes
  its values to memory-mapped files there, and /metrics merges the files of all workers, so whichever worker a
  scrape reaches answers for the whole server. Counters and histograms of a worker that exited stay in the sums
  (requests it served were served); its gauges leave them (`prune_dead_workers`). Each gauge says how workers
  combine.

Why the service keys its mode on a variable of its own: Feast sets ``PROMETHEUS_MULTIPROC_DIR`` to a temporary
folder of its own in any process that imports ``feast.metrics`` (Feast 0.67 does so lazily, on the first online
read), and a child started from such a process inherits it. That variable says nothing about our workers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from tailor.processes import process_alive

#: prometheus-client's variable: the folder of the metric files (it stores values there when set at its import).
PROMETHEUS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Ours: set by `tailor serve --workers N` (to the same folder) for its workers; /metrics merges the folder.
METRICS_DIR_ENV = "TAILOR_SERVICE_METRICS_DIR"
#: A worker's gauge files are named ``gauge_<mode>_<pid>.db``; the live modes are the ones a dead worker leaves.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")

#: Latency buckets (seconds): fine below the 50 ms budget, coarse up to the deadline and beyond.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 10.0)

#: Exception names in a fallback reason that mean the online store failed (Redis, SQLite, a socket).
_STORE_ERRORS = re.compile(
    r"ConnectionError|TimeoutError|RedisError|ResponseError|OperationalError|BusyLoading|OSError"
)


def reason_kind(reason: str | None) -> str:
    """A bounded label for `Recommendation.fallback_reason` (the text `ml.recommend` writes; see serving.py).

    Returns one of: none, holdout, cold_start, budget, busy, deadline, no_model, store_down, model_error, other.
    """
    if not reason:
        return "none"
    text = reason.lower()
    if text.startswith("holdout"):
        return "holdout"
    if "cold start" in text:
        return "cold_start"
    if "budget" in text:
        return "budget"
    if "deadline" in text:
        return "deadline"
    if "no champion" in text or "no candidate" in text:
        return "no_model"
    if "model path is busy" in text:
        return "busy"
    if "feature store did not answer" in text or "online store is down" in text or _STORE_ERRORS.search(reason):
        return "store_down"
    if "model path failed" in text:
        return "model_error"
    return "other"


def multiprocess_dir() -> Path | None:
    """The workers' metrics folder (``TAILOR_SERVICE_METRICS_DIR``) in multiprocess mode, else None."""
    value = os.environ.get(METRICS_DIR_ENV, "")
    return Path(value) if value else None


@contextlib.contextmanager
def worker_metrics_env(workers: int) -> Iterator[Path | None]:
    """The environment `tailor serve` starts its workers in, for as long as the server runs.

    ``workers > 1``: a new temporary folder (``tailor-serve-metrics-*`` under TMPDIR), named in
    ``PROMETHEUS_MULTIPROC_DIR`` and ``TAILOR_SERVICE_METRICS_DIR`` (an inherited value is replaced: see the module
    docstring); yields it, then removes it and restores the variables. A new folder per start rather than a fixed
    one under TAILOR_HOME: nothing of an earlier server (or of another server on the same home) is ever in it,
    so there is nothing to clean and no counts to add up by mistake; and it is local disk, where memory-mapped
    files belong.

    ``workers == 1``: no folder (yields None); an inherited ``PROMETHEUS_MULTIPROC_DIR`` is removed for the
    duration, so the one process keeps its values in memory instead of in files of a folder it does not own
    (which may be gone: prometheus-client would fail on the first metric).
    """
    saved = {name: os.environ.get(name) for name in (PROMETHEUS_ENV, METRICS_DIR_ENV)}
    folder = Path(tempfile.mkdtemp(prefix="tailor-serve-metrics-")) if workers > 1 else None
    for name in saved:
        if folder is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(folder)
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def prune_dead_workers(folder: Path) -> list[int]:
    """`mark_process_dead` for every worker with gauge files in ``folder`` whose process is gone.

    uvicorn's supervisor has no hook for a worker's exit (gunicorn's ``child_exit`` is where prometheus-client's
    docs call it), and a worker killed by the kernel runs no shutdown code, so the live gauges' files are swept
    here, when /metrics is scraped. Returns the pids swept.
    """
    dead = sorted({int(m.group(1)) for f in folder.iterdir() if (m := _LIVE_GAUGE_FILE.match(f.name))} - {os.getpid()})
    dead = [pid for pid in dead if not process_alive(pid)]
    for pid in dead:
        with contextlib.suppress(FileNotFoundError):  # another worker swept it first
            prometheus_multiprocess.mark_process_dead(pid, str(folder))
    return dead


def mark_this_worker_dead() -> None:
    """On a worker's clean shutdown in multiprocess mode: drop its live gauges from the sums at once."""
    folder = multiprocess_dir()
    if folder is not None:
        prometheus_multiprocess.mark_process_dead(os.getpid(), str(folder))


def _values_in_memory() -> None:
    """Keep this process's metric values in memory, as one process (one worker, an in-process app) wants.

    prometheus-client decides where values live once, when it is imported: in files of ``PROMETHEUS_MULTIPROC_DIR``
    when that is set then, which Feast does in any process that read online features (module docstring). Its
    values are then keyed by metric, labels and pid alone, so every app of the process shared them: a second app's
    counter started at the first one's total, and one request counted as two (the full suite's test_routes, found
    2026-11-30 and reproduced: two apps, one process, the variable set). Child values are made when a label set is
    first used, from ``values.ValueClass``: setting that class back is what makes each registry its own.
    """
    from prometheus_client import values

    values.ValueClass = values.MutexValue


class Metrics:
    """Every metric the service exports; `render` is what /metrics answers (the mode is read from the environment,
    ``TAILOR_SERVICE_METRICS_DIR``: see the module docstring)."""

    def __init__(self) -> None:
        self.folder = multiprocess_dir()
        if self.folder is None:
            _values_in_memory()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tailor_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tailor_http_request_duration_seconds",
            "Time from a request's first byte to the end of its response, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.served = Counter(
            "tailor_recommendations_total",
            "Pages served, by the path that served them (model, cached, popular) and surface.",
            ["served_by", "surface"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "tailor_recommendation_fallbacks_total",
            "Pages not served by the model, by kind of reason (holdout, cold_start, budget, busy, deadline, "
            "no_model, store_down, model_error, other).",
            ["reason"],
            registry=self.registry,
        )
        self.store_errors = Counter(
            "tailor_online_store_errors_total",
            "Online store failures seen by the service: a page's model path or readiness probe that failed on it.",
            ["operation"],
            registry=self.registry,
        )
        # A gauge rather than prometheus-client's Info (which the multiprocess mode does not support); it renders
        # the same series, tailor_model_info{version,closed_reason} 1. livemax: a version is 1 while any live
        # worker serves it (two during a reload that one worker has done and the other not yet).
        self.model = Gauge(
            "tailor_model_info",
            "The champion model the service serves (version empty when there is none); 1 while served.",
            ["version", "closed_reason"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self._model_labels: tuple[str, str] | None = None
        # livemin: 1 only when every live worker has the model path open, so one worker without it shows.
        self.model_loaded = Gauge(
            "tailor_model_loaded",
            "1 when a champion is loaded and the model path is open (in every worker), else 0.",
            multiprocess_mode="livemin",
            registry=self.registry,
        )
        self.events = Counter(
            "tailor_events_total",
            "Events received by POST /events, by outcome (landed, already_ingested, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self.stream_failures = Counter(
            "tailor_stream_publish_failures_total",
            "POST /events batches landed but not published to the stream (the broker did not answer).",
            registry=self.registry,
        )
        # livesum: each worker counts what it failed to publish; a worker that exits takes its count with it
        # (its events are landed either way; the next `tailor run` builds them).
        self.stream_behind = Gauge(
            "tailor_stream_behind_events",
            "Events landed since the stream last accepted a batch, summed over the live workers (0: current).",
            multiprocess_mode="livesum",
            registry=self.registry,
        )

    def set_model(self, version: str | None, closed_reason: str | None) -> None:
        """Record which champion serves (and whether the model path is open)."""
        labels = (version or "", (closed_reason or "")[:200])
        if self._model_labels is not None and self._model_labels != labels:
            # Zero, not remove: in multiprocess mode the old series stays in this worker's file.
            self.model.labels(*self._model_labels).set(0)
        self.model.labels(*labels).set(1)
        self._model_labels = labels
        self.model_loaded.set(1 if version and not closed_reason else 0)

    def render(self) -> bytes:
        """The Prometheus text of this app's registry, or of every worker's files in multiprocess mode."""
        if self.folder is None:
            return generate_latest(self.registry)
        prune_dead_workers(self.folder)
        merged = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(merged, path=str(self.folder))
        return generate_latest(merged)
