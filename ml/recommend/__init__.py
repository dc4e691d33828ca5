"""Recommendations: `recommend` for one user online (latency budget, fallbacks, business rules) and the batch pages
written after each training run. The result type (`Recommendation`) is the contract the CLI, app and service render.
"""

from ml.recommend.result import Recommendation, RecommendedItem
from ml.recommend.rules import PageRules
from ml.recommend.serving import RecommendationInputError, Recommender, ServingConfig, recommend

__all__ = [
    "PageRules",
    "Recommendation",
    "RecommendationInputError",
    "RecommendedItem",
    "Recommender",
    "ServingConfig",
    "recommend",
]
