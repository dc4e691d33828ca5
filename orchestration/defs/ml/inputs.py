"""What each model asset's output depends on, as `orchestration.lib.fingerprint.Inputs` (no Feast, no MLflow).

- `ml/candidates`: the three marts the generators learn from (`ml.history`), their configuration, their code.
- `ml/ranker`: the training set, the same marts (the candidate scores and the ranking evaluation read them), the
  feature marts and definitions (the evaluation reads candidates' features through Feast), the whole ranker
  configuration (windows, budgets, seed, candidate settings), the code.
- `ml/recommendations`: the model registry (the champion), the candidate generators, the online store's load,
  the marts the recommender reads, the page rules (``TAILOR_RECOMMEND_*``), the code.

Every file part is a content digest (`ml.features.digests.file_digest`): a mart dbt rewrote with the same rows is
unchanged. Missing files are a state of their own (``missing``), so a later build of them counts as a change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ml.features.training import training_set_path
from ml.history import CONTENT, IMPRESSIONS, INTERACTIONS
from ml.ranker.config import RankerConfig
from orchestration.lib.fingerprint import Inputs, bytes_digest, code_digest, config_digest, optional_file_digest
from tailor.settings import Settings

HISTORY_MARTS = (IMPRESSIONS, INTERACTIONS, CONTENT)
FEATURE_MARTS = ("fct_user_features_daily", "fct_content_features_daily", "fct_content_profile")
#: The code that makes each output: the package version does not move with a change, the source does.
CANDIDATES_CODE = ("ml.candidates", "ml.history")
RANKER_CODE = ("ml.candidates", "ml.history", "ml.ranker", "ml.evaluate")
RECOMMENDATIONS_CODE = ("ml.recommend", "tailor.assignment")
RECOMMEND_ENV_PREFIX = "TAILOR_RECOMMEND_"


def _marts(settings: Settings, names: tuple[str, ...]) -> dict[str, str]:
    return {f"marts/{name}": optional_file_digest(settings.marts_dir / f"{name}.parquet") for name in names}


def candidates_inputs(settings: Settings, config: RankerConfig) -> Inputs:
    """The inputs of `ml/candidates` (the generators are fitted on the whole history as of its newest event)."""
    return Inputs(
        {
            **_marts(settings, HISTORY_MARTS),
            "config": config_digest(config.candidates.as_dict()),
            "code": code_digest(CANDIDATES_CODE),
        }
    )


def ranker_inputs(settings: Settings, config: RankerConfig) -> Inputs:
    """The inputs of `ml/ranker` (a training run is deterministic given these: the seed is in the config)."""
    from ml.features.repo import definitions_fingerprint

    return Inputs(
        {
            "training_set": optional_file_digest(training_set_path(settings)),
            **_marts(settings, HISTORY_MARTS),
            **_marts(settings, FEATURE_MARTS),
            "feature_definitions": definitions_fingerprint(),
            "config": config_digest(config.as_dict()),
            "code": code_digest(RANKER_CODE),
        }
    )


def recommendations_inputs(settings: Settings, candidates: str, env: Mapping[str, str] | None = None) -> Inputs:
    """The inputs of `ml/recommendations`.

    The champion is part of the registry's file (``models/mlflow.db``, bytes): reading the alias through MLflow
    would cost its import (seconds) on every run, and a promotion by hand (`tailor models promote`) changes the
    file as a new version does.

    Args:
        candidates: the candidate generators' inputs fingerprint (their data version).
        env: the environment holding the page rules (default: os.environ).
    """
    from ml.features.materialize import last_materialized_version
    from ml.features.repo import definitions_fingerprint

    env = os.environ if env is None else env
    rules = {k: v for k, v in env.items() if k.startswith(RECOMMEND_ENV_PREFIX)}
    return Inputs(
        {
            "registry": bytes_digest(settings.models_dir / "mlflow.db"),
            "candidates": candidates,
            "online_store": last_materialized_version(settings) or "never loaded",
            "feature_definitions": definitions_fingerprint(),
            **_marts(settings, (*HISTORY_MARTS, "dim_users")),
            "config": config_digest(rules),
            "code": code_digest(RECOMMENDATIONS_CODE),
        }
    )
