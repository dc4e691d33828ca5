"""Tailor's feature store in Python: open it for a home, read online features, build point-in-time training sets.

A plain library over Feast (feature_repo/): no Dagster or Streamlit here. See feature_repo/README.md.

The names below are loaded on first use, not when the package is imported: importing Feast costs seconds, and the
Dagster assets import submodules (digests, plans) that decide, without Feast, that there is nothing to do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.features.online import OK, UnknownFeatureError, online_features
    from ml.features.training import build_training_set, impressions_spine, write_training_set
    from tailor.feature_store import FeatureStoreConfigError, open_store

_EXPORTS = {
    "OK": "ml.features.online",
    "UnknownFeatureError": "ml.features.online",
    "online_features": "ml.features.online",
    "build_training_set": "ml.features.training",
    "impressions_spine": "ml.features.training",
    "write_training_set": "ml.features.training",
    "FeatureStoreConfigError": "tailor.feature_store",
    "open_store": "tailor.feature_store",
}

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
