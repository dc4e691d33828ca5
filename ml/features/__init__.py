"""Tailor's feature store in Python: open it for a home, read online features, build point-in-time training sets.

A plain library over Feast (feature_repo/): no Dagster or Streamlit here. See feature_repo/README.md.
"""

from ml.features.online import OK, UnknownFeatureError, online_features
from ml.features.training import build_training_set, impressions_spine, write_training_set
from tailor.feature_store import FeatureStoreConfigError, open_store, silence_known_noise

silence_known_noise()  # after Feast's import, which puts its own filters first

__all__ = [
    "OK",
    "FeatureStoreConfigError",
    "UnknownFeatureError",
    "build_training_set",
    "impressions_spine",
    "online_features",
    "open_store",
    "write_training_set",
]
