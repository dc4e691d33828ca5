"""Cached recommendations: each active user's page per surface, written after every training run.

`recommend` falls back to these when the model path cannot answer within its latency budget. Precomputed values
are a batch feature view in Feast's own terms (a model's output stored like any feature, keyed by the entity it
describes): the Parquet file the batch asset writes is its source, and the same rows are written straight to the
online store, so offline and online agree without a separate materialization.
"""

from datetime import timedelta

from conventions import OWNER, feature
from data_sources import published_marts_dir
from entities import user
from feast import FeatureView, FileSource
from feast.types import Array, Float64, String

# A FileSource whatever TAILOR_ENGINE says: the file is Tailor's own output, written straight to the online store and
# never read by an offline store, and it does not exist before the first ranker, when `feast apply` on Spark would
# refuse a SparkSource over it (Spark's validation reads the path; FileSource's only warns).
cached_recommendations_source = FileSource(
    name="cached_recommendations_source",
    path=str(published_marts_dir() / "batch_recommendations_by_user.parquet"),
    timestamp_field="generated_at",
    description="One row per user: the batch pages of ml/recommendations, as arrays per surface.",
    owner=OWNER,
)

cached_recommendations_fv = FeatureView(
    name="cached_recommendations",
    entities=[user],
    # A page older than two days is likely stale: popular items serve better than yesterday's guess.
    ttl=timedelta(days=2),
    schema=[
        *(
            field
            for surface in ("home", "feed")
            for field in (
                feature(f"{surface}_content_ids", Array(String), f"The cached page on {surface}, best first."),
                feature(f"{surface}_scores", Array(Float64), f"Each item's score on the {surface} page."),
                feature(f"{surface}_slot_kinds", Array(String), "personalized / explore / popular / editorial."),
                feature(f"{surface}_reasons", Array(String), f"The reason shown with each item on {surface}."),
                feature(f"{surface}_propensities", Array(Float64), "Probability the policy chose each item."),
            )
        ),
        feature("model_version", String, "The champion version that scored the pages ('' for holdout pages)."),
    ],
    source=cached_recommendations_source,
    online=True,
    description="Each active user's recommended pages from the last batch run (the fallback when the model is slow).",
    owner=OWNER,
    # Written to the online store by the asset that computes it, not by `feast materialize` (ml.features.materialize).
    tags={"owner": OWNER, "freshness": "daily", "written_by": "ml/recommendations"},
)
