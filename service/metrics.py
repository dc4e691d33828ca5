"""The service's Prometheus metrics, in a registry of its own (one per app, so tests can run several apps).

Names follow Prometheus' conventions (``_total`` counters, base units: seconds). Labels are bounded: a route is its
template (``/recommendations/{user_id}``), never the user's path, and a fallback reason is one of a few kinds
(`reason_kind`), never the free text of `Recommendation.fallback_reason`.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

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


class Metrics:
    """Every metric the service exports; ``registry`` is what /metrics renders."""

    def __init__(self) -> None:
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
        self.model = Info(
            "tailor_model",
            "The champion model the service serves (version empty when there is none).",
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "tailor_model_loaded",
            "1 when a champion is loaded and the model path is open, else 0.",
            registry=self.registry,
        )
        self.events = Counter(
            "tailor_events_total",
            "Events received by POST /events, by outcome (landed, already_landed, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self.stream_failures = Counter(
            "tailor_stream_publish_failures_total",
            "POST /events batches landed but not published to the stream (the broker did not answer).",
            registry=self.registry,
        )
        self.stream_behind = Gauge(
            "tailor_stream_behind_events",
            "Events landed by this process since the stream last accepted a batch (0 when the stream is current).",
            registry=self.registry,
        )

    def set_model(self, version: str | None, closed_reason: str | None) -> None:
        """Record which champion serves (and whether the model path is open)."""
        self.model.info({"version": version or "", "closed_reason": (closed_reason or "")[:200]})
        self.model_loaded.set(1 if version and not closed_reason else 0)
