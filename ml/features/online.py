"""Online feature lookup for serving: one row per request, nulls and a status for what the store does not know.

Feast answers an unknown user with nulls and no further word, and answers an id of the wrong type (an int for a
string key) the same way. This helper keeps the nulls, adds a per-row ``status`` that says which entity was not
found, refuses wrong key types, and turns an unknown feature or service name into an error that lists what exists.

Feast's SQLite and Redis online stores also serve a value however old it is, with status PRESENT: the
OUTSIDE_MAX_AGE status exists in Feast 0.67 but only its pre-computed feature vectors set it. The offline join
(training sets) returns null once a row is older than its view's TTL, so a model would see at serving time values
it never saw in training. The ``status`` therefore also names the views whose row is past its TTL at request time,
computed the way the offline join does (stale when request time - event timestamp > ttl), so callers can fall back.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

#: Row status when every requested view had a value for the row's entities.
OK = "ok"
#: Request field the on-demand views read; filled with the current time when a row does not carry it.
REQUEST_TIME_FIELD = "request_at"
_FOUND = frozenset({FieldStatus.PRESENT, FieldStatus.NULL_VALUE})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RESOLVED: weakref.WeakKeyDictionary[FeatureStore, dict[object, tuple[datetime | None, _Resolved]]] = (
    weakref.WeakKeyDictionary()
)


class UnknownFeatureError(KeyError):
    """A requested feature, feature view or feature service is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclass(frozen=True)
class _Resolved:
    """What a request reads: Feast's feature argument, and for each stored feature its view's entities."""

    features: FeatureService | list[str]
    entities_by_feature: dict[str, tuple[str, ...]]
    join_keys: tuple[str, ...]
    needs_request_time: bool
    view_by_feature: dict[str, str]  # stored feature -> its view
    ttl_ns_by_view: dict[str, int]  # views with a TTL -> the TTL in nanoseconds


def online_features(
    store: FeatureStore,
    entity_rows: Sequence[Mapping[str, Any]],
    features: str | Sequence[str] = "ranker_v1",
    request_at: datetime | None = None,
) -> pd.DataFrame:
    """Features for each entity row, from the online store.

    Args:
        store: An open feature store (``ml.features.open_store``).
        entity_rows: e.g. ``[{"user_id": "u0000001", "content_id": "c0000007"}]``; ids are strings.
        features: A feature service name (default ``ranker_v1``) or ``"view:feature"`` references.
        request_at: Request time for on-demand features, for rows without ``request_at``; default now (UTC).

    Returns:
        One row per entity row, in order: the keys, each feature (null when unknown), and ``status``: ``ok``, or
        what is wrong, in up to two parts joined by "; ":

        - ``unknown user`` / ``unknown content`` / ``unknown user and content``: the store has no values for that
          entity (a user who never visited, an id with a typo, an item not yet materialized);
        - ``stale <view> and <view>``: the stored row of these views is older than the view's TTL at the row's
          request time (its ``request_at``, else ``request_at``, else now), e.g. ``stale user_engagement``. Its
          values are still returned; a training set would have nulls there, so fall back or null them.

        On-demand features are not judged themselves, only the stored views requested with them (ranker_v1's
        ``category_affinity`` reads ``user_category_affinity``, whose rows are those of ``user_engagement`` under
        a longer TTL: when it is stale, ``user_engagement`` is too).

    Raises:
        UnknownFeatureError: a feature, view or service name is not registered (the message lists what is).
        ValueError / TypeError: an entity row lacks a key the features need, or a key is not a string.
    """
    resolved = _resolve_cached(store, features)
    rows = _checked_rows(entity_rows, resolved, request_at)
    if not rows:
        return pd.DataFrame(columns=[*resolved.join_keys, *resolved.entities_by_feature, "status"])
    response = store.get_online_features(features=resolved.features, entity_rows=rows)
    frame = pd.DataFrame(response.to_dict())
    default_moment = request_at or datetime.now(UTC)
    moments = [_epoch_ns(row.get(REQUEST_TIME_FIELD, default_moment)) for row in rows]
    frame["status"] = _statuses(response, resolved, moments)
    return frame


def _resolve_cached(store: FeatureStore, features: str | Sequence[str]) -> _Resolved:
    """_resolve, remembered per store until its registry cache is refreshed (as Feast's own request cache is)."""
    key = features if isinstance(features, str) else tuple(features)
    stamp = getattr(store.registry, "cached_registry_proto_created", None)
    per_store = _RESOLVED.setdefault(store, {})
    hit = per_store.get(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return hit[1]
    resolved = _resolve(store, features)
    per_store[key] = (getattr(store.registry, "cached_registry_proto_created", None), resolved)
    return resolved


def _resolve(store: FeatureStore, features: str | Sequence[str]) -> _Resolved:
    # allow_cache: a forced registry refresh would also empty Feast's own per-request cache (tens of ms a call).
    views = {view.name: view for view in store.list_feature_views(allow_cache=True)}
    on_demand = {view.name: view for view in store.list_on_demand_feature_views(allow_cache=True)}
    entity_keys = {entity.name: entity.join_key for entity in store.list_entities(allow_cache=True)}
    requested: FeatureService | list[str]
    if isinstance(features, str):
        services = {service.name: service for service in store.list_feature_services()}
        if features not in services:
            raise UnknownFeatureError(
                f"no feature service named {features!r}{_suggest(features, services)}; "
                f"registered services: {', '.join(sorted(services)) or 'none (run `feast apply`)'}"
            )
        requested = services[features]
        pairs = [(p.name, f.name) for p in requested.feature_view_projections for f in p.features]
    else:
        requested = list(features)
        pairs = [_split(ref) for ref in requested]
    stored: dict[str, tuple[str, ...]] = {}
    view_by_feature: dict[str, str] = {}
    ttl_ns_by_view: dict[str, int] = {}
    key_entities: set[str] = set()
    needs_request_time = False
    for view_name, feature in pairs:
        view: FeatureView | OnDemandFeatureView | None = views.get(view_name) or on_demand.get(view_name)
        if view is None:
            known = sorted([*views, *on_demand])
            raise UnknownFeatureError(
                f"no feature view named {view_name!r}{_suggest(view_name, known)}; views: {', '.join(known)}"
            )
        names = [f.name for f in view.features]
        if feature not in names:
            raise UnknownFeatureError(
                f"feature view {view_name!r} has no feature {feature!r}{_suggest(feature, names)}; "
                f"its features: {', '.join(names)}"
            )
        if isinstance(view, OnDemandFeatureView):
            request_fields = {f.name for source in view.source_request_sources.values() for f in source.schema}
            needs_request_time = needs_request_time or REQUEST_TIME_FIELD in request_fields
            # The views it reads are looked up too, so their keys are needed even if none of their features is asked.
            for projection in view.source_feature_view_projections.values():
                key_entities.update(views[projection.name].entities)
        else:
            stored[feature] = tuple(view.entities)
            view_by_feature[feature] = view_name
            if view.ttl:  # Feast: a TTL of 0 or none means values never expire
                ttl_ns_by_view[view_name] = view.ttl // timedelta(microseconds=1) * 1000
            key_entities.update(view.entities)
    return _Resolved(
        features=requested,
        entities_by_feature=stored,
        join_keys=tuple(sorted(entity_keys[name] for name in key_entities if name in entity_keys)),
        needs_request_time=needs_request_time,
        view_by_feature=view_by_feature,
        ttl_ns_by_view=ttl_ns_by_view,
    )


def _split(ref: str) -> tuple[str, str]:
    view, sep, feature = ref.partition(":")
    if not sep or not view or not feature:
        raise UnknownFeatureError(
            f"{ref!r} is not a feature reference: write 'view:feature' (e.g. 'user_engagement:clicks_7d') "
            "or pass a feature service name"
        )
    return view, feature


def _suggest(name: str, candidates: Sequence[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _checked_rows(
    entity_rows: Sequence[Mapping[str, Any]], resolved: _Resolved, request_at: datetime | None
) -> list[dict[str, Any]]:
    now = request_at or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for index, row in enumerate(entity_rows):
        checked = dict(row)
        for key in resolved.join_keys:
            if key not in checked:
                raise ValueError(f"entity row {index} has no {key!r}: these features need {list(resolved.join_keys)}")
            value = checked[key]
            if not isinstance(value, str):
                # Feast would coerce it silently and find nothing: fail loudly instead.
                raise TypeError(
                    f"entity row {index}: {key} must be a string (ids look like 'u0000001'), "
                    f"got {type(value).__name__} {value!r}"
                )
        if resolved.needs_request_time:
            checked.setdefault(REQUEST_TIME_FIELD, now)
        rows.append(checked)
    return rows


def _epoch_ns(moment: Any) -> int:
    """A request time as nanoseconds since the epoch: a datetime (naive = UTC), ISO 8601 text or epoch seconds."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    elif isinstance(moment, int | float):
        return int(moment * 1_000_000_000)
    if not isinstance(moment, datetime):
        raise TypeError(f"{REQUEST_TIME_FIELD} must be a datetime, ISO 8601 text or epoch seconds, got {moment!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000 + getattr(moment, "nanosecond", 0)


def _statuses(response: Any, resolved: _Resolved, moments_ns: Sequence[int]) -> list[str]:
    """Per row, the entities for which no requested view had a value, and the views whose value is past its TTL."""
    n_rows = len(moments_ns)
    missing: list[set[str]] = [set() for _ in range(n_rows)]
    found: list[set[str]] = [set() for _ in range(n_rows)]
    stale: list[set[str]] = [set() for _ in range(n_rows)]
    names = list(response.proto.metadata.feature_names.val)
    for name, vector in zip(names, response.proto.results, strict=True):
        entities = resolved.entities_by_feature.get(name)
        if not entities:
            continue  # an entity key or an on-demand feature
        view = resolved.view_by_feature[name]
        ttl_ns = resolved.ttl_ns_by_view.get(view)
        # Feast's Redis store reports a missing entity as PRESENT with an empty value (SQLite says NOT_FOUND); a
        # stored row always has an event timestamp, so that is what tells them apart on both.
        for row, (status, stamp) in enumerate(zip(vector.statuses, vector.event_timestamps, strict=True)):
            stored = status in _FOUND and (stamp.seconds > 0 or stamp.nanos > 0)
            (found if stored else missing)[row].update(entities)
            # The offline join keeps a row while event_timestamp + ttl >= the entity row's timestamp.
            if (
                stored
                and ttl_ns is not None
                and moments_ns[row] - (stamp.seconds * 1_000_000_000 + stamp.nanos) > ttl_ns
            ):
                stale[row].add(view)
    # Entities and views in the order the request names them (ranker_v1: user, then content).
    order = list(dict.fromkeys(e for entities in resolved.entities_by_feature.values() for e in entities))
    view_order = list(dict.fromkeys(resolved.view_by_feature.values()))
    statuses: list[str] = []
    for gone, have, old in zip(missing, found, stale, strict=True):
        parts = []
        if gone - have:
            parts.append("unknown " + " and ".join(e for e in order if e in gone - have))
        if old:
            parts.append("stale " + " and ".join(v for v in view_order if v in old))
        statuses.append("; ".join(parts) or OK)
    return statuses
