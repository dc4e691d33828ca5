"""truth.json: the model behind the events in words and numbers, for evaluation code.

Deterministic (nothing about the machine or the wall clock), so the same config gives the same file. It names
each formula next to its parameters, lists the truth tables with their columns, and states every experiment's
true effect both as planted (a multiplier) and as realised over the exposed impressions and sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.batch import EVENT_TYPES
from simulator.behaviour import TALLIES, examine, quality_mean
from simulator.config import MALFORMED_KINDS, PARQUET_IMPOSSIBLE_KINDS, SimulationConfig
from simulator.faults import DUPLICATE, LATE, FaultLog, kind_weights
from simulator.world import World

if TYPE_CHECKING:
    from simulator.truth import TruthRecorder

TRUTH_VERSION = 1


def truth_document(
    rec: TruthRecorder, log: FaultLog | None, events_written: int, files: dict[str, list[str]]
) -> dict[str, Any]:
    """The contents of truth.json (deterministic: nothing about the machine or the wall clock)."""
    world = rec.world
    c = world.config
    code = log.code if log is not None else np.zeros(0, dtype=np.int8)
    malformed = {kind: int((code == i + 1).sum()) for i, kind in enumerate(MALFORMED_KINDS)}
    return {
        "truth_version": TRUTH_VERSION,
        "generator": "simulator",
        "seed": c.seed,
        "period": {
            "start_date": c.start_date.isoformat(),
            "end_date": c.end_date.isoformat(),
            "days": c.days,
            "delivery_dates": _delivery_dates(files),
        },
        "counts": _counts(rec, code, events_written),
        "click_model": _click_model(world),
        "dwell_model": {
            "formula": "clip(exp(log(median) + quality_effect * (quality - quality_mean) + taste_effect * "
            "log(taste_factor) + sigma * N(0, 1)), 1, max_seconds), rounded to 0.1 s",
            "median_seconds": c.dwell_median_seconds,
            "median_meaning": "median dwell for an item of mean quality and a user with taste_factor 1",
            "quality_effect": c.dwell_quality_effect,
            "taste_effect": c.dwell_taste_effect,
            "sigma": c.dwell_sigma,
            "max_seconds": c.dwell_max_seconds,
            "timing": "view occurred_at = click occurred_at + uniform(0.3 s, 2.5 s)",
        },
        "conversion_model": {
            "formula": "p = min(1, sigmoid(intercept + click_slope * session_clicks + dwell_slope * "
            "log1p(session_dwell_seconds / 60)) * experiment_multiplier); one Bernoulli draw per session",
            "intercept": c.conversion_intercept,
            "click_slope": c.conversion_click_slope,
            "dwell_slope": c.conversion_dwell_slope,
            "value": {
                "distribution": "lognormal, rounded to cents, clipped to [0.50, 9999.99]",
                "median": c.conversion_value_median,
                "sigma": c.conversion_value_sigma,
            },
            "currency": "by the user's signup country: GBP in GB, EUR in euro countries, else USD",
            "timing": "session end (last request or view) + uniform(5 s, 120 s)",
            "per_session_table": "_truth/sessions.parquet",
        },
        "session_model": {
            "sessions_per_user_day": "Poisson(activity * weekday_factor[weekday of the UTC day]), only after signup",
            "activity": {
                "distribution": "lognormal",
                "mean": c.activity_mean_sessions,
                "sigma": c.activity_sigma,
            },
            "weekday_factors_monday_first": list(c.weekday_factors),
            "local_hour_profile": list(c.hourly_profile),
            "time_zones": "local hour shifted by the signup country's UTC offset (whole hours)",
            "requests_per_session": f"1 + min(Poisson({c.extra_requests_mean}), {c.max_requests_per_session - 1})",
            "request_gap_seconds": f"{c.request_gap_min_seconds} + Exponential(mean {c.request_gap_mean_seconds})",
            "slate_size": c.slate_size,
            "surfaces": list(c.surfaces),
            "first_request_surface_weights": list(c.first_surface_weights),
            "later_request_surface_weights": list(c.later_surface_weights),
        },
        "logged_policy": {
            "name": "plackett_luce_over_daily_pool",
            "pool": "refreshed at 00:00 UTC from items published before then: the pool_top best by score plus "
            "pool_explore others drawn uniformly",
            "score": "recency_weight * 0.5 ** (age_hours / recency_half_life_hours) + popularity_weight * "
            "log1p(clicks in the previous window_days days) + quality_weight * policy_quality_estimate",
            "ranking": "Plackett-Luce draw with weights exp(score / temperature) (Gumbel-top-k)",
            "recency_weight": c.policy_recency_weight,
            "recency_half_life_hours": c.policy_recency_half_life_hours,
            "popularity_weight": c.policy_popularity_weight,
            "popularity_window_days": c.policy_popularity_window_days,
            "quality_weight": c.policy_quality_weight,
            "quality_noise_sd": c.policy_quality_noise,
            "temperature": c.policy_temperature,
            "pool_top": c.policy_pool_top,
            "pool_explore": c.policy_pool_explore,
            "personalised": False,
            "propensities": "_truth/pool.parquet: propensity_first = P(item at position 1) = w / sum(w) over the "
            "day's pool, w = exp((score - max score) / temperature) (exact for the Gumbel-top-k draw); position 1 "
            "has examine = 1, so the top slot is a logged bandit with known propensities",
        },
        "users": {
            "count": len(world.users),
            "taste": f"Dirichlet(taste_alpha_total * category_weights / sum), taste_alpha_total = "
            f"{c.taste_alpha_total}",
            "presignup_share": c.presignup_share,
            "signup_history_days": c.signup_history_days,
            "country_weights": dict(c.country_weights),
            "plan_weights": dict(c.plan_weights),
            "plan_change_rate_per_day": c.plan_change_rate,
            "country_move_rate_per_day": c.country_move_rate,
            "behaviour_ignores": "plan, and country moves after signup",
            "table": "_truth/users.parquet",
        },
        "catalog": {
            "categories": list(c.categories),
            "category_weights": list(c.category_weights),
            "initial_items": c.initial_catalog,
            "back_catalog_days": c.back_catalog_days,
            "new_items_per_day": c.new_items_per_day,
            "format_weights": dict(c.format_weights),
            "quality": {"distribution": "beta", "a": c.quality_beta[0], "b": c.quality_beta[1]},
            "mislabel_rate": c.mislabel_rate,
            "relabel_daily_rate": c.relabel_daily_rate,
            "edit_daily_rate": c.edit_daily_rate,
            "note": "category in content files is a label: new items are sometimes mislabelled and corrected "
            "later (a new version); behaviour always follows the true category in _truth/content.parquet",
            "table": "_truth/content.parquet",
        },
        "experiments": _experiments(rec),
        "faults": _faults(c, code, malformed),
        "tables": _tables(rec.folder),
        "files": files,
        "config": c.to_dict(),
    }


def _delivery_dates(files: dict[str, list[str]]) -> list[str]:
    """Dates of the event files (``events-2026-01-05.jsonl``, or ``events-2026-01-05.2.jsonl`` for a second file
    of the same delivery day written by a continued run)."""
    return sorted({Path(p).name.removeprefix("events-")[:10] for p in files.get("events", [])})


def _counts(rec: TruthRecorder, code: np.ndarray, events_written: int) -> dict[str, Any]:
    """Exact counts of what a run wrote."""
    malformed = {kind: int((code == i + 1).sum()) for i, kind in enumerate(MALFORMED_KINDS)}
    return {
        "events_written": events_written,
        "clean_events": int(rec.counts_by_type.sum()),
        "clean_events_by_type": {t: int(n) for t, n in zip(EVENT_TYPES, rec.counts_by_type, strict=True)},
        "duplicates": int((code == DUPLICATE).sum()),
        "late": int((code == LATE).sum()),
        "malformed": malformed,
        "malformed_total": sum(malformed.values()),
        "users": len(rec.world.users),
        "content_items": len(rec.world.catalog),
        "sessions": rec.sessions,
        "requests": rec.requests,
    }


_TABLE_GRAIN = {
    "users": "one row per user: signup, country and plan at signup and at the end, activity, taste_<category> "
    "(sums to 1), variant_<experiment_id>",
    "content": "one row per item: true category (drives behaviour), label_at_publish, format, published_at, "
    "latent quality, the policy's noisy quality estimate",
    "impressions": "one row per clean impression event: pool_day (the day's pool in pool.parquet the slate was "
    "drawn from), examine, attract, attract_without_experiments, experiment_multiplier, p_click (the exact "
    "probability its click was drawn from) and clicked",
    "sessions": "one row per session: times, requests, clicks, dwell, p_conversion (exact), "
    "p_conversion_without_experiments, converted, exposed_<experiment_id>",
    "pool": "one row per day x candidate item of the logged policy: pool_rank (< pool_top: top by score, else "
    "explore), score, propensity_first (exact probability the item was drawn for position 1 that day)",
    "faults": "one row per planted fault: event_id, fault (duplicate, late or a malformed kind), base_event_id "
    "(the clean event a malformed row copies), occurred_at, received_at, delivery_date",
}
_CONTINUED_GRAIN = {
    "requests": "the closed loop: one row per request of a continued day: served_by (cached: a page of the "
    "served file; logging: the built-in policy's slate), page_policy and variant (from the file), after_exposure "
    "(the user's personalization_holdout exposure is at or before the request), experiment_multiplier, impressions "
    "and clicks shown, and the true expected clicks (sum over slots of examine(position) * attract) of the served "
    "page and, on the same request, of the holdout, oracle, popularity, random and logging pages; holdout_source "
    "and holdout_slots say which holdout page was valued (see closed_loop.pages)",
    "impressions": "as impressions, for the continued days, plus policy, model_version and propensity as logged "
    "(null for the logging policy's slates)",
    "sessions": "as sessions, for the continued days",
    "pool": "as pool, for the continued days",
    "faults": "as faults, for the continued days",
}


def _tables(folder: Path) -> dict[str, Any]:
    """Each truth table: path, what one row is, and its columns (read back from the written file). The tables of
    continued runs are one file per run, ``_truth/continued/<table>-<first date>.parquet``."""
    out: dict[str, Any] = {}
    for name, grain in _TABLE_GRAIN.items():
        path = folder / f"{name}.parquet"
        if path.exists():
            columns = pq.read_schema(path).names
            out[name] = {"path": f"_truth/{name}.parquet", "grain": grain, "columns": columns}
    for name, grain in _CONTINUED_GRAIN.items():
        paths = sorted((folder / "continued").glob(f"{name}-*.parquet"))
        if paths:
            out[f"continued_{name}"] = {
                "path": f"_truth/continued/{name}-*.parquet",
                "files": [f"_truth/continued/{p.name}" for p in paths],
                "grain": grain,
                "columns": pq.read_schema(paths[-1]).names,
            }
    return out


def _click_model(world: World) -> dict[str, Any]:
    c = world.config
    positions = np.arange(1, c.slate_size + 1)
    return {
        "formula": "P(click) = examine(position) * attract(user, item, t)",
        "model": "position-based model: one independent Bernoulli draw per impression",
        "examine": {
            "formula": "(1 / position) ** eta",
            "eta": c.position_bias_eta,
            "by_position": {str(p): float(x) for p, x in zip(positions, examine(c, positions), strict=True)},
        },
        "attract": {
            "formula": "clip(base_attract * taste_factor * quality_factor * freshness * drift_multiplier * "
            "experiment_multiplier, 0, 1)",
            "base_attract": c.base_attract,
            "taste_factor": "(K * taste[user, true category]) ** taste_exponent",
            "K": len(c.categories),
            "taste_exponent": c.taste_exponent,
            "quality_factor": "(quality / quality_mean) ** quality_exponent",
            "quality_mean": quality_mean(c),
            "quality_exponent": c.quality_exponent,
            "freshness": "floor + (1 - floor) * 0.5 ** (age_hours / half_life_hours)",
            "freshness_floor": c.freshness_floor,
            "freshness_half_life_hours": c.freshness_half_life_hours,
            "age": "impression occurred_at - item published_at",
            "drift_multiplier": _drift(c),
            "experiment_multiplier": "product of the multipliers of running ctr experiments on the request's "
            "surface for the user's arm (1 elsewhere)",
        },
        "click_timing": f"impression time + {c.click_delay_min_seconds} s + Exponential(mean "
        f"{c.click_delay_mean_seconds} s)",
        "per_impression_table": "_truth/impressions.parquet" if c.write_impression_truth else None,
    }


def _drift(c: SimulationConfig) -> dict[str, Any]:
    """The planted drift (config.drift) in words and numbers: which items, from when, by how much."""
    if c.drift is None:
        return {"rule": "1 (no drift planted)", "planted": False}
    d = c.drift
    return {
        "rule": "attract_multiplier for items whose true category is `category`, on impressions at or after "
        "from_at (start_date + from_day days, 00:00 UTC); 1 otherwise. Part of attract_without_experiments",
        "planted": True,
        "category": d.category,
        "from_day": d.from_day,
        "from_at": _date_iso(c, d.from_day) + "T00:00:00.000Z",
        "attract_multiplier": d.attract_multiplier,
    }


def _experiments(rec: TruthRecorder) -> list[dict[str, Any]]:
    world = rec.world
    c = world.config
    out = []
    for e, spec in enumerate(c.experiments):
        start = world.experiment_start_day[e]
        arms = []
        for a, variant in enumerate(spec.variants):
            get = _tally_reader(rec.tallies[e, a] if rec.tallies is not None else np.zeros(len(TALLIES)))
            impressions, sessions = get("impressions"), get("exposed_sessions")
            with_ctr = _ratio(get("expected_clicks"), impressions)
            without_ctr = _ratio(get("expected_clicks_without_effect"), impressions)
            with_conv = _ratio(get("expected_conversions"), sessions)
            without_conv = _ratio(get("expected_conversions_without_effect"), sessions)
            assert rec.exposed is not None
            arms.append(
                {
                    "variant": variant,
                    "weight": spec.weights[a],
                    "multiplier": spec.multipliers[a],
                    "planted_relative_effect": round(spec.multipliers[a] - 1, 12),
                    "users_assigned": int((world.arms[e] == a).sum()),
                    "users_exposed": int((rec.exposed[e] & (world.arms[e] == a)).sum()),
                    "exposed_sessions": int(sessions),
                    "impressions_after_exposure": int(impressions),
                    "clicks_after_exposure": int(get("clicks")),
                    "ctr_expected": with_ctr,
                    "ctr_expected_without_effect": without_ctr,
                    "ctr_true_absolute_effect": _diff(with_ctr, without_ctr),
                    "ctr_true_relative_effect": _rel(with_ctr, without_ctr),
                    "conversions_after_exposure": int(get("conversions")),
                    "conversion_rate_expected": with_conv,
                    "conversion_rate_expected_without_effect": without_conv,
                    "conversion_true_absolute_effect": _diff(with_conv, without_conv),
                    "conversion_true_relative_effect": _rel(with_conv, without_conv),
                }
            )
        out.append(
            {
                "experiment_id": spec.experiment_id,
                "kind": "A/A" if len(set(spec.multipliers)) == 1 else "A/B",
                "target": spec.target,
                "target_meaning": {
                    "ctr": "multiplies attract (before clipping) of impressions on the experiment's surfaces",
                    "conversion": "multiplies the conversion probability of exposed sessions (capped at 1)",
                    "none": "no effect: every arm behaves identically",
                }[spec.target],
                "variants": list(spec.variants),
                "weights": list(spec.weights),
                "start_day_index": start,
                "start_date": _date_iso(c, start),
                "start_at": _date_iso(c, start) + "T00:00:00.000Z",
                "pre_period_days": start,
                "surfaces": list(spec.surfaces),
                "exposure_rule": "one exposure event per session that starts on or after start_at, at its first "
                "request on one of the surfaces (just before that request's impressions)",
                "effect_applies_to": "exposed sessions after start only",
                "assignment": "tailor.assignment: md5(f'{experiment_id}:{user_id}'), first 8 hex "
                "digits as int % 10000, mapped onto cumulative weights",
                "exposures": int(rec.exposures[e]) if rec.exposures is not None else 0,
                "arms": arms,
                "expected_sums_note": "ctr_* and conversion_rate_* are means of the exact probabilities over "
                "the arm's exposed impressions/sessions; *_without_effect recomputes them with this "
                "experiment's multiplier set to 1",
            }
        )
    return out


def _tally_reader(row: np.ndarray) -> Callable[[str], float]:
    return lambda name: float(row[TALLIES.index(name)])


def _faults(c: SimulationConfig, code: np.ndarray, malformed: dict[str, int]) -> dict[str, Any]:
    weights = kind_weights(c)
    return {
        "rates_are_shares_of": "clean events",
        "receive_delay": f"received_at = occurred_at + 50 ms + Exponential(mean {c.receive_delay_mean_seconds} s)"
        " for events that are not late",
        "duplicates": {
            "count": int((code == DUPLICATE).sum()),
            "rate": c.duplicate_rate,
            "rule": "the same event (same event_id and payload) delivered again; a share duplicate_exact_share "
            "is byte-identical (same received_at), the rest re-sent 1 s + uniform(0, max_delay_hours) later "
            "(received_at of the re-delivery), so possibly in a later day's file",
            "exact_share": c.duplicate_exact_share,
            "max_delay_hours": c.duplicate_max_delay_hours,
        },
        "late": {
            "count": int((code == LATE).sum()),
            "rate": c.late_rate,
            "rule": "received_at = occurred_at + uniform(min_hours, max_hours), conditioned on a later UTC day "
            "than occurred_at (so always in a later day's file)",
            "min_hours": c.late_min_hours,
            "max_hours": c.late_max_hours,
        },
        "malformed": {
            "count_by_kind": malformed,
            "total": sum(malformed.values()),
            "rate": c.malformed_rate,
            "kind_probabilities": {k: float(w) for k, w in zip(MALFORMED_KINDS, weights, strict=True)},
            "rule": "a corrupted copy of a clean event under a fresh event_id, received with that event "
            "(the clean stream stays intact); base_event_id in _truth/faults.parquet",
            "kinds": {
                "invalid_json": "line cut short (no closing brace)",
                "missing_field": "event_id, user_id, occurred_at or a type-required field absent",
                "bad_type": 'position "top", dwell_seconds "abc", value "12,50", variant 1, or user_id as a number',
                "unknown_event_type": 'event_type "scroll"',
                "bad_timestamp": 'occurred_at "yesterday" or "2026-13-45"',
                "future_timestamp": "occurred_at 365 days after received_at (valid JSON Schema, impossible in time)",
            },
            "not_generated": sorted(PARQUET_IMPOSSIBLE_KINDS) if c.format == "parquet" else [],
            "not_generated_reason": "a typed Parquet file cannot hold a truncated line or a wrongly typed value"
            if c.format == "parquet"
            else None,
        },
        "table": "_truth/faults.parquet",
    }


def _date_iso(c: SimulationConfig, day: int) -> str:
    return (c.start_date + timedelta(days=day)).isoformat()


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _rel(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b - 1


# ---------------------------------------------------------------- continued runs and the closed loop


def continued_document(
    rec: TruthRecorder, previous: dict[str, Any], log: FaultLog | None, events_written: int, files: dict[str, list[str]]
) -> dict[str, Any]:
    """truth.json after a continued run: the earlier document plus a ``continuations`` entry for this run,
    ``counts_total`` over every run, the tables and the ``closed_loop`` summary over all continued days."""
    world = rec.world
    c = world.config
    code = log.code if log is not None else np.zeros(0, dtype=np.int8)
    first = rec.continued_from
    entry: dict[str, Any] = {
        "first_day_index": first,
        "start_date": _date_iso(c, first),
        "end_date": _date_iso(c, world.days - 1),
        "days": world.days - first,
        "policy": "cached" if rec.serving is not None else "logging",
        "pages": _pages(rec),
        "config_changes": {k: asdict(v) if is_dataclass(v) else v for k, v in rec.changes.items()},  # type: ignore[arg-type]
        "counts": _counts(rec, code, events_written),
        "delivery_dates": _delivery_dates(files),
        "exposures": {
            name: int(n)
            for name, n in zip(
                [e.experiment_id for e in c.experiments] + (["personalization_holdout"] if rec.serving else []),
                rec.exposures if rec.exposures is not None else [],
                strict=True,
            )
        },
        "files": files,
    }
    doc = dict(previous)
    doc["continuations"] = [*previous.get("continuations", []), entry]
    doc["counts_total"] = _total_counts([previous["counts"], *(e["counts"] for e in doc["continuations"])])
    doc["click_model"] = _click_model(world)
    doc["tables"] = _tables(rec.folder)
    doc["closed_loop"] = closed_loop_summary(rec.folder, c)
    return doc


def _pages(rec: TruthRecorder) -> dict[str, Any] | None:
    if rec.serving is None:
        return None
    pages = rec.serving.pages
    return {
        "source": pages.source,
        "rows_served": pages.rows,
        "users": pages.users,
        "users_by_variant": {v: int((pages.user_variant == i).sum()) for i, v in enumerate(pages.variants)},
        "policies": list(pages.policies),
        "model_versions": list(pages.model_versions),
        "rule": "a request of a user with a page for its surface shows that page (rows by rank, at most "
        "slate_size); other requests get the logging policy's slate; the first served request of each user over "
        "all continued days gets a personalization_holdout exposure 1 ms before it, variant from the file",
    }


def _total_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts summed over runs (users and content_items: the latest)."""
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in ("users", "content_items"):
                total[key] = value
            elif isinstance(value, dict):
                inner = total.setdefault(key, {})
                for k, v in value.items():
                    inner[k] = inner.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    return total


def closed_loop_summary(folder: Path, c: SimulationConfig) -> dict[str, Any]:
    """True CTR per page kind over the continued days, and the true lift of personalization over the holdout,
    from the closed-loop requests tables (``_truth/continued/requests-*.parquet``)."""
    paths = sorted((folder / "continued").glob("requests-*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    col = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    dates = sorted({str(d)[:10] for d in (col["occurred_at"].min(), col["occurred_at"].max())})
    k = c.slate_size
    cached = col["served_by"] == "cached"
    policy = np.asarray([p if p is not None else "" for p in col["page_policy"]], dtype=object)
    variant = np.asarray([v if v is not None else "" for v in col["variant"]], dtype=object)
    return {
        "requests_tables": [f"_truth/continued/{p.name}" for p in paths],
        "first_request_at": str(dates[0]),
        "last_request_at": str(dates[-1]),
        "pages": {
            "served": "the page shown (expected clicks = sum of the impressions' p_click)",
            "holdout": "the holdout's page: the page served when it was a holdout page; else the file's holdout "
            "list (items by the number of holdout pages showing them, then mean rank) minus the user's consumed "
            "items; else (no holdout pages in the file, or no file) the popularity page",
            "oracle": "the slate_size available items with the highest true attract, best first",
            "popularity": "the available items clicked most in the 7 days before the request's day",
            "random": "slate_size available items drawn uniformly",
            "logging": "the built-in logging policy's Plackett-Luce slate drawn for the request",
            "available": "published before the request and not clicked by the user before the request's day",
            "value": "expected clicks = sum over slots of examine(position) * attract(user, item, request time), "
            "attract with the request's experiment multiplier and the planted drift (click_model)",
            "true_ctr": "expected clicks / slots: impressions for served, holdout_slots for holdout, slate_size "
            "for the others",
        },
        "true_ctr": {
            "all_requests": _page_ctrs(col, np.ones(len(cached), dtype=bool), k),
            "cached_requests": _page_ctrs(col, cached, k),
            "personalized_pages": _page_ctrs(col, cached & (policy == "personalized"), k),
            "holdout_pages": _page_ctrs(col, cached & (policy == "holdout"), k),
        },
        "personalization_holdout": _holdout_lift(col, variant),
    }


def _page_ctrs(col: dict[str, np.ndarray], rows: np.ndarray, k: int) -> dict[str, Any]:
    """True CTR per impression of each page kind over the chosen requests."""
    n = int(rows.sum())
    out: dict[str, Any] = {"requests": n}
    if n == 0:
        return out
    out["impressions_served"] = int(col["impressions"][rows].sum())
    out["clicks_served"] = int(col["clicks"][rows].sum())
    slots = {"served": col["impressions"][rows].sum(), "holdout": col["holdout_slots"][rows].sum()}
    for kind in ("served", "holdout", "oracle", "popularity", "random", "logging"):
        expected = float(col[f"expected_clicks_{kind}"][rows].sum())
        out[f"ctr_{kind}"] = _ratio(expected, float(slots.get(kind, n * k)))
    return out


def _holdout_lift(col: dict[str, np.ndarray], variant: np.ndarray) -> dict[str, Any]:
    """Per arm of personalization_holdout, over impressions of exposed users at or after their exposure (what
    the experiment engine measures): the true CTR (expected clicks / impressions) and the observed one; the
    true lift; and on the personalized arm's requests, its served pages against the holdout page."""
    after = col["after_exposure"]
    arms: list[dict[str, Any]] = []
    ctr: dict[str, float | None] = {}
    for name in ("holdout", "personalized"):
        rows = after & (variant == name)
        impressions = float(col["impressions"][rows].sum())
        expected = float(col["expected_clicks_served"][rows].sum())
        arms.append(
            {
                "variant": name,
                "users_exposed": len(np.unique(col["user_id"][rows])),
                "requests_after_exposure": int(rows.sum()),
                "impressions_after_exposure": int(impressions),
                "clicks_after_exposure": int(col["clicks"][rows].sum()),
                "expected_clicks_after_exposure": expected,
                "ctr_true": _ratio(expected, impressions),
                "ctr_observed": _ratio(float(col["clicks"][rows].sum()), impressions),
            }
        )
        ctr[name] = arms[-1]["ctr_true"]
    holdout, personalized = ctr["holdout"], ctr["personalized"]
    rows = after & (variant == "personalized")
    served = _ratio(float(col["expected_clicks_served"][rows].sum()), float(col["impressions"][rows].sum()))
    counterfactual = _ratio(float(col["expected_clicks_holdout"][rows].sum()), float(col["holdout_slots"][rows].sum()))
    return {
        "experiment_id": "personalization_holdout",
        "metric": "ctr: clicks per impression, impressions at or after each user's first exposure",
        "arms": arms,
        "true_absolute_lift": _diff(personalized, holdout),
        "true_relative_lift": _rel(personalized, holdout),
        "lift_meaning": "difference of the arms' true CTR (expected clicks per impression, so no click noise): "
        "what the experiment engine's measured ctr difference estimates",
        "same_requests": {
            "requests": int(rows.sum()),
            "ctr_served": served,
            "ctr_holdout_page": counterfactual,
            "absolute_lift": _diff(served, counterfactual),
            "relative_lift": _rel(served, counterfactual),
            "meaning": "the personalized arm's requests valued with the page served and with the holdout's page: "
            "the effect of personalization on the treated, free of the arms' different users",
        },
    }
