"""Request-time features for ranking, and the versioned feature service the ranker reads.

Some features only exist when a request arrives: how old an item is *now*, and how well its category matches the
user's recent clicks. They are computed on demand from stored features plus the request time, identically online
(per request) and in training sets (per impression, with request_at = the impression time).
"""

from typing import Any

from content_features import content_popularity_fv, content_profile_fv
from conventions import OWNER
from feast import FeatureService, Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, UnixTimestamp
from user_features import user_category_affinity_fv, user_engagement_fv

ranking_request = RequestSource(
    name="ranking_request",
    schema=[Field(name="request_at", dtype=UnixTimestamp, description="When the ranking request was made (UTC).")],
    description="Supplied by the caller with every request (training sets: the impression time).",
    owner=OWNER,
)


# Feast compares declared on-demand outputs with inferred ones including description and tags, so fields that carry
# them fail `feast apply` (feast-dev/feast#3617, closed as wontfix). Their descriptions and owner live in the view's
# tags instead ("feature:<name>" -> description).
@on_demand_feature_view(
    sources=[content_profile_fv[["published_at", "category"]], user_category_affinity_fv, ranking_request],
    schema=[Field(name="content_age_hours", dtype=Float64), Field(name="category_affinity", dtype=Float64)],
    mode="python",
    description="Content age at request time and how well the item's category matches the user's taste.",
    owner=OWNER,
    tags={
        "owner": OWNER,
        "feature:content_age_hours": "Hours from the item's publication to the request (null when unknown).",
        "feature:category_affinity": "Share of the user's last-28-day clicks in this item's category: 0 when none, "
        "null when the user has no recent clicks or the item's category is unknown.",
    },
)
def ranking_context(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    # Feast stores this function's source and runs it alone: no module-level helpers may be used in it.
    from datetime import UTC, datetime

    ages: list[float | None] = []
    matches: list[float | None] = []
    rows = zip(
        inputs["request_at"],
        inputs["published_at"],
        inputs["category"],
        inputs["affinity_categories"],
        inputs["affinity_shares"],
        strict=True,
    )
    for request_at, published_at, category, categories, shares in rows:
        # Over HTTP (`feast serve`) JSON has no datetime: request_at arrives as ISO text or epoch seconds.
        if isinstance(request_at, str):
            request_at = datetime.fromisoformat(request_at)
        elif isinstance(request_at, int | float):
            request_at = datetime.fromtimestamp(request_at, UTC)
        if request_at is None or published_at is None:
            ages.append(None)
        else:
            # Tailor's timestamps are UTC; the offline store hands them over without a zone, the online one with.
            request_at = request_at if request_at.tzinfo else request_at.replace(tzinfo=UTC)
            published_at = published_at if published_at.tzinfo else published_at.replace(tzinfo=UTC)
            ages.append((request_at - published_at).total_seconds() / 3600.0)
        if category is None or not categories:
            matches.append(None)
        else:
            matches.append(dict(zip(categories, shares, strict=True)).get(category, 0.0))
    return {"content_age_hours": ages, "category_affinity": matches}


ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[user_engagement_fv, content_profile_fv, content_popularity_fv, ranking_context],
    description="Features of the ranking model, version 1: user activity, content profile and popularity, and the "
    "request-time context. A new model version gets a new service (ranker_v2); this one never changes.",
    owner=OWNER,
    tags={"owner": OWNER, "model": "ranker", "version": "1"},
)
