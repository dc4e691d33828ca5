"""The model registry: every trained ranker as a version in MLflow, with the aliases ``champion`` and ``challenger``.

MLflow's tracking store and model registry run on a SQLite file under ``<TAILOR_HOME>/models/`` with artifacts
beside it (no server). Each version carries its metrics, its Optuna parameters and search history, and tags: the
feature service, the training and test windows, a fingerprint of the training rows and the library versions.

Promotion rule (docs/decisions.md, "Champion and challenger"): a new version becomes ``challenger``; it replaces
the ``champion`` only if, scored on the *same* test window (the challenger's), its log loss is lower and its
NDCG@k is not lower by more than `NDCG_TOLERANCE`. The first version is champion by default. Both scores and the
decision are recorded on the version; the reason names the window, because the champion's numbers there differ
from those it was registered with (each version's stored metrics are on its own test window).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_NAME = "ranker"
EXPERIMENT = "ranker"
CHAMPION, CHALLENGER = "champion", "challenger"
NDCG_TOLERANCE = 0.005
_ARTIFACT = "ranker.pkl"


class RegistryError(LookupError):
    """A version or alias that does not exist, or a registry that cannot be opened."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered ranker version, as the registry knows it."""

    version: int
    run_id: str
    aliases: list[str]
    created_at: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Promotion:
    """The outcome of comparing a challenger with the champion on the same window."""

    promoted: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    #: The window both were scored on (the challenger's test window, as its ``test_window`` tag spells it).
    window: str | None = None
    #: The champion the challenger was compared with.
    champion_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    refused: str | None = None,
    *,
    window: str | None = None,
    champion_version: int | None = None,
    champion_window: str | None = None,
) -> Promotion:
    """The promotion rule on two sets of scores from the same window (``log_loss``, ``ndcg_at_k``).

    A challenger that may not serve (``refused``: why, e.g. `ml.ranker.evaluate.refusal`: its AUC not above
    popularity's, or miscalibrated) is never promoted, not even as the first model: popular items serve the pages
    until a model passes. Otherwise the first model becomes champion, and a later one when its log loss is lower
    than the champion's and its NDCG@k not lower by more than `NDCG_TOLERANCE`.

    Args:
        window: the window both were scored on (the challenger's test window, e.g. ``2026-01-14..2026-01-16``);
            the reason names it, since the champion's numbers there are not those stored with the champion.
        champion_version: the champion's version number, named in the reason.
        champion_window: the champion's own test window (its ``test_window`` tag), named when it differs.
    """
    if refused is not None:
        stays = "the champion stays" if champion is not None else "no champion: the pages stay on popular items"
        return Promotion(
            False, f"{refused}: {stays}", dict(challenger), dict(champion) if champion else None, window, None
        )
    if champion is None:
        return Promotion(True, "no champion yet: the first model becomes champion", dict(challenger), None, window)
    better_loss = challenger["log_loss"] < champion["log_loss"]
    ndcg_ok = challenger["ndcg_at_k"] >= champion["ndcg_at_k"] - NDCG_TOLERANCE
    where = _same_window(window, champion_version, champion_window)
    if better_loss and ndcg_ok:
        reason = (
            f"{where}log loss {challenger['log_loss']:.5f} < {champion['log_loss']:.5f} and NDCG "
            f"{challenger['ndcg_at_k']:.4f} >= {champion['ndcg_at_k']:.4f} - {NDCG_TOLERANCE}"
        )
        return Promotion(True, reason, dict(challenger), dict(champion), window, champion_version)
    why = []
    if not better_loss:
        why.append(f"log loss {challenger['log_loss']:.5f} is not below the champion's {champion['log_loss']:.5f}")
    if not ndcg_ok:
        why.append(f"NDCG {challenger['ndcg_at_k']:.4f} is below the champion's {champion['ndcg_at_k']:.4f}")
    return Promotion(False, where + "; ".join(why), dict(challenger), dict(champion), window, champion_version)


def _same_window(window: str | None, champion_version: int | None, champion_window: str | None) -> str:
    """The reason's opening: which window both versions were scored on. `tailor models` lists each version on its
    own test window, so without this the champion's numbers in the reason match nothing the user can see."""
    if window is None:
        return ""
    who = f"champion v{champion_version}" if champion_version is not None else "the champion"
    if champion_window == window:
        return f"both scored on the same test window {window} (the challenger's and {who}'s own): "
    own = f"on its own test window {champion_window}" if champion_window else "on its own test window"
    return (
        f"both scored on the challenger's test window {window} ({who} re-scored there; its row in `tailor models` "
        f"is {own}, hence other numbers): "
    )


class Registry:
    """MLflow tracking + model registry for one Tailor home (``<home>/models``)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._client: Any = None

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.models_dir / 'mlflow.db'}"

    def client(self) -> Any:
        """The MlflowClient (imported and connected on first use: MLflow is slow to import)."""
        if self._client is None:
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            import mlflow
            from mlflow import MlflowClient

            _quiet_mlflow()

            self.models_dir.mkdir(parents=True, exist_ok=True)
            mlflow.set_tracking_uri(self.tracking_uri)
            if mlflow.get_experiment_by_name(EXPERIMENT) is None:
                mlflow.create_experiment(EXPERIMENT, artifact_location=(self.models_dir / "artifacts").as_uri())
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def log(
        self,
        model: Any,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        documents: Mapping[str, Any],
    ) -> ModelVersion:
        """Record a trained model as a new version (alias ``challenger``) and return it.

        Args:
            model: the object serving loads (pickled as an artifact of the run).
            metrics: flat numbers (``group.model.metric``).
            params: hyperparameters (Optuna's best) and configuration.
            tags: feature service, windows, data fingerprint, library versions...
            documents: JSON-able extras stored as artifacts (the full evaluation, the search history).
        """
        client = self.client()
        experiment = client.get_experiment_by_name(EXPERIMENT)
        run = client.create_run(experiment.experiment_id, tags=dict(tags))
        run_id = run.info.run_id
        for key, value in params.items():
            client.log_param(run_id, key, str(value)[:6000])
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            with (folder / _ARTIFACT).open("wb") as handle:
                pickle.dump(model, handle)
            for name, document in documents.items():
                (folder / f"{name}.json").write_text(json.dumps(document, indent=2, default=str))
            client.log_artifacts(run_id, str(folder))
        client.set_terminated(run_id)
        if not _registered(client):
            client.create_registered_model(MODEL_NAME, description="Click model that ranks candidates (ml.ranker).")
        created = client.create_model_version(MODEL_NAME, f"runs:/{run_id}/{_ARTIFACT}", run_id=run_id, tags=dict(tags))
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER, created.version)
        return self.get(int(created.version))

    def record_decision(self, version: int, promotion: Promotion) -> None:
        """Store the comparison and its outcome on the version; make it champion when promoted."""
        client = self.client()
        client.set_model_version_tag(MODEL_NAME, str(version), "promotion", json.dumps(promotion.as_dict()))
        if promotion.promoted:
            client.set_registered_model_alias(MODEL_NAME, CHAMPION, str(version))

    def tag(self, version: int, tags: Mapping[str, str]) -> None:
        """Add tags to a version (e.g. the fingerprint of the inputs it was trained on, which a later run compares
        with its own to skip a retrain that could only reproduce it)."""
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(MODEL_NAME, str(version), key, value)

    def promote(self, version: int) -> ModelVersion:
        """Make ``version`` the champion by hand (`tailor models promote`).

        The current champion is left as it is (its recorded promotion decision is kept). Raises RegistryError for
        an unknown version.
        """
        target = self.get(version)
        if CHAMPION in target.aliases:
            return target
        client = self.client()
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, str(version))
        client.set_model_version_tag(
            MODEL_NAME, str(version), "promotion", json.dumps({"promoted": True, "reason": "promoted by hand"})
        )
        return self.get(version)

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first (empty when nothing was trained yet)."""
        if not (self.models_dir / "mlflow.db").exists():
            return []
        client = self.client()
        if not _registered(client):
            return []
        found = client.search_model_versions(f"name = '{MODEL_NAME}'")
        # Aliases live on the registered model (alias -> version); search results do not carry them.
        aliases: dict[int, list[str]] = {}
        for alias, number in client.get_registered_model(MODEL_NAME).aliases.items():
            aliases.setdefault(int(number), []).append(alias)
        return sorted((self._describe(v, aliases) for v in found), key=lambda v: -v.version)

    def get(self, version: int) -> ModelVersion:
        """One version. Raises RegistryError naming the versions that exist."""
        for candidate in self.versions():
            if candidate.version == version:
                return candidate
        known = ", ".join(str(v.version) for v in self.versions()) or "none yet (run `tailor run` to train one)"
        raise RegistryError(f"no ranker version {version}; versions: {known}")

    def alias(self, alias: str) -> ModelVersion | None:
        """The version holding ``alias`` (``champion`` / ``challenger``), or None."""
        return next((v for v in self.versions() if alias in v.aliases), None)

    def load(self, version: int) -> Any:
        """The model object of a version (as `log` stored it)."""
        target = self.get(version)
        # The artifact is copied out of the store to read it; the copy goes with the read (every load used to
        # leave a folder behind in the system temp directory).
        with tempfile.TemporaryDirectory(prefix="tailor-model-") as scratch:
            path = self.client().download_artifacts(target.run_id, _ARTIFACT, scratch)
            with open(path, "rb") as handle:
                return pickle.load(handle)

    def _describe(self, version: Any, aliases: Mapping[int, list[str]]) -> ModelVersion:
        client = self.client()
        run = client.get_run(version.run_id)
        return ModelVersion(
            version=int(version.version),
            run_id=version.run_id,
            aliases=sorted(aliases.get(int(version.version), [])),
            created_at=_iso(version.creation_timestamp),
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            tags={**run.data.tags, **version.tags},
        )


def _quiet_mlflow() -> None:
    """MLflow's own INFO lines off (on a new registry it announces its database tables and migrations on stderr,
    which reads like output of `tailor`); its warnings and errors still show, and Tailor's loggers are untouched.

    Set after the import: importing mlflow configures its ``mlflow`` logger at MLFLOW_LOGGING_LEVEL (INFO unless
    set), which would undo a level set before. A user who sets MLFLOW_LOGGING_LEVEL gets that level."""
    if not os.environ.get("MLFLOW_LOGGING_LEVEL"):
        logging.getLogger("mlflow").setLevel(logging.WARNING)


def _registered(client: Any) -> bool:
    return bool(client.search_registered_models(f"name = '{MODEL_NAME}'"))


def _iso(epoch_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat()
