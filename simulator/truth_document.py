"""truth.json: the model behind the events in words and numbers, for evaluation code.

Deterministic (nothing about the machine or the wall clock), so the same config gives the same file. It names
each formula next to its parameters, lists the truth tables with their columns, and states every experiment's
true effect both as planted (a multiplier) and as realised over the exposed impressions and sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
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
    clean = int(rec.counts_by_type.sum())
    return {
        "truth_version": TRUTH_VERSION,
        "generator": "simulator",
        "seed": c.seed,
        "period": {
            "start_date": c.start_date.isoformat(),
            "end_date": c.end_date.isoformat(),
            "days": c.days,
            "delivery_dates": sorted({Path(p).stem.split("events-")[-1] for p in files.get("events", [])}),
        },
        "counts": {
            "events_written": events_written,
            "clean_events": clean,
            "clean_events_by_type": {t: int(n) for t, n in zip(EVENT_TYPES, rec.counts_by_type, strict=True)},
            "duplicates": int((code == DUPLICATE).sum()),
            "late": int((code == LATE).sum()),
            "malformed": malformed,
            "malformed_total": sum(malformed.values()),
            "users": len(world.users),
            "content_items": len(world.catalog),
            "sessions": rec.sessions,
            "requests": rec.requests,
        },
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


def _tables(folder: Path) -> dict[str, Any]:
    """Each truth table: path, what one row is, and its columns (read back from the written file)."""
    out: dict[str, Any] = {}
    for name, grain in _TABLE_GRAIN.items():
        path = folder / f"{name}.parquet"
        if path.exists():
            columns = pq.read_schema(path).names
            out[name] = {"path": f"_truth/{name}.parquet", "grain": grain, "columns": columns}
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
