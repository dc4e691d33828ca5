"""Train a ranker, register it, and let the promotion rule decide whether it replaces the champion.

The champion is re-scored on the challenger's test window (the same impressions, the same candidate lists), so the
two are compared on equal terms (`ml.registry.decide`, whose reason names that window: the champion's numbers there
are not the ones stored with it, which are on its own test window).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feast import FeatureStore

from ml.evaluate.metrics import ndcg_at_k
from ml.history import History
from ml.monitoring.config import DriftConfig
from ml.ranker.config import RankerConfig
from ml.ranker.dataset import TrainingDataError
from ml.ranker.evaluate import classification_metrics, refusal, summarize, top_k_lists
from ml.ranker.model import RankerModel
from ml.ranker.train import TrainedRanker, train_ranker
from ml.registry import CHAMPION, ModelVersion, Promotion, Registry, decide


@dataclass(frozen=True)
class Release:
    """What a training run produced: the new version, the decision about it, and the trained ranker."""

    version: ModelVersion
    promotion: Promotion
    trained: TrainedRanker


def head_to_head(model: RankerModel, trained: TrainedRanker) -> dict[str, float]:
    """A model's log loss on the trained ranker's test impressions and its NDCG@k on the same candidate lists."""
    assert trained.test_rows is not None and trained.candidate_rows is not None and trained.test_users is not None
    k = trained.config.ranking_k
    loss = classification_metrics(trained.test_rows["clicked"].to_numpy(), model.predict(trained.test_rows))["log_loss"]
    users = trained.test_users
    lists = top_k_lists(trained.candidate_rows, model.relevance(trained.candidate_rows), users["user_id"].tolist(), k)
    return {"log_loss": loss, "ndcg_at_k": ndcg_at_k(lists, users["relevant"].tolist(), k)}


def train_and_register(
    training_set: Path,
    history: History,
    store: FeatureStore,
    config: RankerConfig,
    registry: Registry,
    drift: DriftConfig | None = None,
) -> Release:
    """Train (see `train_ranker`), log the model as a new version with its drift reference (fitted on the rows it
    was trained on, `ml.monitoring.champion.save_reference`), compare it with the champion, decide.

    Args:
        drift: the drift checks' bins (default: `DriftConfig()`); a check configured otherwise refits its own.

    Raises:
        TrainingDataError: the data cannot train a model (see `train_ranker`).
    """
    # ml.monitoring.champion imports ml.ranker (which imports this module): imported here, where it is used.
    from ml.monitoring.champion import save_reference

    trained = train_ranker(training_set, history, store, config, registry.models_dir / "search")
    champion = registry.alias(CHAMPION)
    params = {**{f"hgb.{k}": v for k, v in trained.model.params.items()}, **_flat("config", config.as_dict())}
    tags = trained.tags()
    version = registry.log(
        trained.model,
        summarize(trained.metrics),
        params,
        tags,
        {"evaluation": trained.metrics, "search": trained.search.trials, "windows": trained.windows.as_dict()},
    )
    if trained.train_rows is not None:
        # Saved now, while the scored training window is in memory: a check would otherwise rescore the whole
        # window with refitted candidate generators (docs/decisions.md, "The drift reference is saved at training").
        save_reference(
            registry.models_dir,
            version.version,
            tags["training_window"],
            trained.train_rows,
            trained.model,
            drift or DriftConfig(),
        )
    classification = trained.metrics["classification"]
    challenger_scores = head_to_head(trained.model, trained)
    refused = refusal(classification["ranker"], classification["popularity"]["auc"])
    champion_scores = None
    if champion is not None:
        try:
            champion_scores = head_to_head(registry.load(champion.version), trained)
        except TrainingDataError as exc:
            promotion = (
                Promotion(
                    False,
                    f"{refused}: the champion stays (it cannot score today's data: {exc})",
                    challenger_scores,
                    None,
                )
                if refused is not None
                else Promotion(True, f"the champion cannot score today's data ({exc})", challenger_scores, None)
            )
            registry.record_decision(version.version, promotion)
            return Release(registry.get(version.version), promotion, trained)
    promotion = decide(
        challenger_scores,
        champion_scores,
        refused,
        window=tags["test_window"],
        champion_version=champion.version if champion is not None else None,
        champion_window=champion.tags.get("test_window") if champion is not None else None,
    )
    registry.record_decision(version.version, promotion)
    return Release(registry.get(version.version), promotion, trained)


def _flat(prefix: str, values: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(f"{prefix}.{key}", value))
        else:
            out[f"{prefix}.{key}"] = value
    return out
