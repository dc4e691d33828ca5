"""The model registry: every trained ranker as a version in MLflow, with the aliases ``champion`` and ``challenger``.

MLflow's tracking store and model registry run on a SQLite file under ``<TAILOR_HOME>/models/`` with artifacts
beside it (no server). Each version carries its metrics, its Optuna parameters and search history, and tags: the
feature service, the training and test windows, a fingerprint of the training rows and the library versions.

Promotion rule (docs/decisions.md, "Champion and challenger"): a new version becomes ``challenger``; it replaces
the ``champion`` only if, scored on the *same* test window (the challenger's), its log loss is lower and its
NDCG@k is not lower by more than `NDCG_TOLERANCE`. The first version is champion by default. Both scores and the
decision are recorded on the version; the reason names the window, because the champion's numbers there differ
from those it was registered with (each version's stored metrics are on its own test window).

A promotion by hand (`Registry.promote`) overrides the comparison with the champion, not the gate: a version that
fails the ranker's checks (`gate`) is refused unless forced. The automatic decision stays on the version (tag
``promotion``); each promotion by hand is added beside it (tags ``promotion.manual.<n>``, `ManualPromotion`), and
`promotion_history` reads both back in order.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

MODEL_NAME = "ranker"
EXPERIMENT = "ranker"
CHAMPION, CHALLENGER = "champion", "challenger"
NDCG_TOLERANCE = 0.005
_ARTIFACT = "ranker.pkl"
#: The version tag holding the automatic decision (`Promotion`), and the prefix of the tags of promotions by hand
#: (``promotion.manual.1``, ``.2``...: one tag each, so the history never outgrows a tag value).
PROMOTION_TAG = "promotion"
MANUAL_PREFIX = "promotion.manual."
#: What `promote` wrote as the automatic decision before promotions by hand were kept apart: the decision it
#: replaced is lost, and who and when were never recorded.
_LEGACY_BY_HAND = {"promoted": True, "reason": "promoted by hand"}


class RegistryError(LookupError):
    """A version or alias that does not exist, or a registry that cannot be opened."""


class PromotionRefused(RegistryError):
    """A promotion by hand of a version that fails the promotion gate (`gate`), not forced."""

    def __init__(self, version: int, failed: str, champion: int | None) -> None:
        self.version, self.failed, self.champion = version, failed, champion
        stays = f"champion v{champion} keeps serving" if champion is not None else "the pages stay on popular items"
        super().__init__(
            f"ranker version {version} fails the promotion gate, so it was not promoted ({stays}): {failed}. "
            f"`tailor models show {version}` has its numbers; to make it serve anyway, run `tailor models promote "
            f"{version} --force` (recorded as forced)"
        )


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


@dataclass(frozen=True)
class ManualPromotion:
    """One promotion by hand, as recorded on the promoted version."""

    #: When, ISO 8601 in UTC (``2026-11-30T10:55:03+00:00``).
    at: str
    #: Who: the login name of the process that promoted it.
    by: str
    #: The champion it replaced (None: there was none).
    previous_champion: int | None
    #: Whether the gate was overridden (``--force``); ``gate`` then says which check failed, with its numbers.
    forced: bool
    gate: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def gate(metrics: Mapping[str, float]) -> str | None:
    """Why a version may not serve, from its stored metrics (``classification.<model>.<metric>`` on its test
    window); None when it may. The rule `decide` is given at training (`ml.ranker.evaluate.refusal`: AUC above
    popularity's, calibrated), on the same numbers: `ml.ranker.release` refuses with the unrounded metrics that
    `ml.ranker.evaluate.summarize` stores.

    A version without a stored AUC (one class in its test window: no AUC exists) or ECE cannot pass: the gate is
    then said to be uncheckable, with the missing metric's name.
    """
    # ml.ranker imports this module (ml.ranker.release); evaluate also loads Feast and scikit-learn: only here.
    from ml.ranker.evaluate import refusal

    missing = [
        name
        for name in ("classification.ranker.auc", "classification.popularity.auc", "classification.ranker.ece")
        if name not in metrics
    ]
    if missing:
        return f"the gate cannot be checked: no {', '.join(missing)} stored with it"
    ranker = {"auc": float(metrics["classification.ranker.auc"]), "ece": float(metrics["classification.ranker.ece"])}
    if "classification.ranker.ece_noise" in metrics:
        ranker["ece_noise"] = float(metrics["classification.ranker.ece_noise"])
    return refusal(ranker, float(metrics["classification.popularity.auc"]))


def promotion_history(version: ModelVersion) -> list[dict[str, Any]]:
    """A version's promotion decisions, oldest first: the automatic one made at training (``kind``
    ``automatic``, the `Promotion` fields), then each promotion by hand (``kind`` ``manual``, the
    `ManualPromotion` fields). A home promoted by hand before this history existed has, in place of the automatic
    decision, one ``manual`` entry with ``at``, ``by``, ``previous_champion`` and ``forced`` None."""
    history: list[dict[str, Any]] = []
    recorded = version.tags.get(PROMOTION_TAG)
    if recorded:
        decision = _json_object(recorded)
        if decision == _LEGACY_BY_HAND:
            history.append(
                {"kind": "manual", "at": None, "by": None, "previous_champion": None, "forced": None, "gate": None}
            )
        else:
            history.append({"kind": "automatic", **decision})
    for _, value in sorted(_manual_tags(version.tags)):
        history.append({"kind": "manual", **_json_object(value)})
    return history


def promotion_lines(history: list[dict[str, Any]]) -> list[str]:
    """A promotion history (`promotion_history`) in words, as `tailor models show` and the app print it:
    ``promoted by the rule: <reason>`` (or ``not promoted by the rule``) for the automatic decision, then one
    ``promoted by hand`` line per promotion by hand. (It read ``promotion: promoted: no champion yet``: a trial.)"""
    lines = []
    for entry in history:
        if entry["kind"] == "automatic":
            outcome = "promoted by the rule" if entry.get("promoted") else "not promoted by the rule"
            lines.append(f"{outcome}: {entry.get('reason', entry.get('text'))}")
        elif entry.get("at") is None:
            lines.append(
                "promoted by hand (recorded before promotions by hand were kept apart: who, when and the automatic "
                "decision it replaced are not known)"
            )
        else:
            when = str(entry["at"])[:19].replace("T", " ") + " UTC"
            previous = entry.get("previous_champion")
            replaced = f"replacing champion v{previous}" if previous is not None else "no champion before"
            forced = f"; FORCED past the promotion gate: {entry.get('gate')}" if entry.get("forced") else ""
            lines.append(f"promoted by hand: {when} by {entry.get('by')}, {replaced}{forced}")
    return lines


def replacements(versions: Sequence[ModelVersion], number: int) -> list[dict[str, Any]]:
    """How version ``number`` lost the champion alias, oldest first: each later promotion that replaced it, as
    ``{"kind": "automatic" | "manual", "by_version": n, "at": ISO time in UTC, "by": login or None}``. The record
    is kept on the version promoted (`promotion_history`); this reads it from the other side, so that the version
    replaced says so too (a trial: `models show 2` after v1 was promoted by hand did not say v2 had lost the alias).
    The automatic ones are timed by the winner's registration."""
    found: list[dict[str, Any]] = []
    for other in versions:
        if other.version == number:
            continue
        for entry in promotion_history(other):
            if entry["kind"] == "automatic" and entry.get("promoted") and entry.get("champion_version") == number:
                found.append({"kind": "automatic", "by_version": other.version, "at": other.created_at, "by": None})
            elif entry["kind"] == "manual" and entry.get("previous_champion") == number:
                at, by = entry.get("at"), entry.get("by")
                found.append({"kind": "manual", "by_version": other.version, "at": at, "by": by})
    # By the second (a promotion by hand is recorded in whole seconds, a registration is not), the rule's first
    # within one: it acts at registration, a person after.
    return sorted(found, key=lambda e: (_second(e["at"]), e["kind"] != "automatic"))


def timeline_lines(version: ModelVersion, versions: Sequence[ModelVersion]) -> list[str]:
    """``version``'s promotions (`promotion_lines`) and the promotions that replaced it (`replacement_lines`) as
    one history, oldest first: the decision at training is timed by its registration, a promotion by hand and a
    replacement by their own times (a re-check trial read a promotion by hand listed before an earlier
    replacement as out of order). Promotions by hand are timed to the millisecond (to the second before
    2026-12-02: within one second those keep the order above)."""
    timed: list[tuple[datetime, int, str]] = []
    for entry in promotion_history(version):
        at = entry.get("at") if entry["kind"] == "manual" and entry.get("at") else version.created_at
        timed.append((_instant(at), len(timed), promotion_lines([entry])[0]))
    for entry in replacements(versions, version.version):
        timed.append((_instant(entry["at"]), len(timed), replacement_lines([entry])[0]))
    return [line for _, _, line in sorted(timed)]


def _instant(text: object) -> datetime:
    """An ISO time as an instant (UTC when it names no zone); unknown or unreadable: first."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _second(text: object) -> datetime:
    """An ISO time as an instant, to the second; unknown or unreadable: first."""
    return _instant(text).replace(microsecond=0)


def replacement_lines(found: list[dict[str, Any]]) -> list[str]:
    """`replacements` in words: ``replaced as champion by v3 (the rule), 2026-01-20 03:04 UTC`` or ``replaced as
    champion by v1, promoted by hand: <when> by <who>``."""
    lines = []
    for entry in found:
        when = str(entry["at"] or "at an unknown time")[:19].replace("T", " ") + (" UTC" if entry["at"] else "")
        if entry["kind"] == "automatic":
            lines.append(f"replaced as champion by v{entry['by_version']} (promoted by the rule), {when}")
        else:
            lines.append(f"replaced as champion by v{entry['by_version']}, promoted by hand: {when} by {entry['by']}")
    return lines


def _manual_tags(tags: Mapping[str, str]) -> list[tuple[int, str]]:
    """The promotions by hand among a version's tags, as (number, JSON)."""
    found = []
    for key, value in tags.items():
        suffix = key.removeprefix(MANUAL_PREFIX)
        if key.startswith(MANUAL_PREFIX) and suffix.isdigit():
            found.append((int(suffix), value))
    return found


def _json_object(text: str) -> dict[str, Any]:
    """A tag's JSON object; a tag that is not one (edited by hand) is kept as its text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"text": text}
    return parsed if isinstance(parsed, dict) else {"text": text}


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


def window_days(window: str) -> str:
    """A ``start..end`` window tag (``end`` excluded, as the tags store it) as the days it holds, ``start to last``
    (other text unchanged). A trial read ``2026-01-30..2026-02-02`` as ending a day after the history."""
    start, sep, end = window.partition("..")
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end) - timedelta(days=1)
    except ValueError:
        return window
    return f"{first} to {last}" if sep else window


def _same_window(window: str | None, champion_version: int | None, champion_window: str | None) -> str:
    """The reason's opening: which window both versions were scored on. `tailor models` lists each version on its
    own test window, so without this the champion's numbers in the reason match nothing the user can see."""
    if window is None:
        return ""
    same = champion_window == window
    window, champion_window = window_days(window), champion_window and window_days(champion_window)
    who = f"champion v{champion_version}" if champion_version is not None else "the champion"
    if same:
        return f"both scored on the same test window {window} (the challenger's and {who}'s own): "
    own = f"on its own test window {champion_window}" if champion_window else "on its own test window"
    return (
        f"both scored on the challenger's test window {window} ({who} re-scored there; its row in `tailor models` "
        f"is {own}, hence other numbers): "
    )


def alias_holder(models_dir: Path, alias: str = CHAMPION) -> int | None:
    """The version holding ``alias`` of the ranker, read from the registry's SQLite file without MLflow (whose
    import costs seconds: a run that trains nothing reads it); None when there is no registry or no such alias.

    It reads MLflow's own table ``registered_model_aliases`` (alias, version, name; MLflow 2.3+'s SQL store):
    where that table cannot be read, it asks MLflow (`Registry.alias`).
    """
    import sqlite3

    path = models_dir / "mlflow.db"
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as con:
            row = con.execute(
                "select version from registered_model_aliases where name = ? and alias = ?", (MODEL_NAME, alias)
            ).fetchone()
    except sqlite3.Error:
        held = Registry(models_dir).alias(alias)
        return None if held is None else held.version
    return None if row is None else int(row[0])


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
        """Store the comparison and its outcome on the version; make it champion when promoted (`_crown`)."""
        client = self.client()
        client.set_model_version_tag(MODEL_NAME, str(version), PROMOTION_TAG, json.dumps(promotion.as_dict()))
        if promotion.promoted:
            self._crown(client, version)

    def _crown(self, client: Any, version: int) -> None:
        """Give ``version`` the ``champion`` alias; a challenger that wins stops being one.

        ``challenger`` names a version that challenged and did not win (a retrain the rule refused), so that no
        version is listed as "challenger, champion" (a trial read that as undecided)."""
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, str(version))
        holder = client.get_registered_model(MODEL_NAME).aliases.get(CHALLENGER)  # alias -> version
        if holder is not None and int(holder) == version:
            client.delete_registered_model_alias(MODEL_NAME, CHALLENGER)

    def tag(self, version: int, tags: Mapping[str, str]) -> None:
        """Add tags to a version (e.g. the fingerprint of the inputs it was trained on, which a later run compares
        with its own to skip a retrain that could only reproduce it)."""
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(MODEL_NAME, str(version), key, value)

    def promote(
        self, version: int, *, force: bool = False, by: str | None = None, at: datetime | None = None
    ) -> ModelVersion:
        """Make ``version`` the champion by hand (`tailor models promote`), and record it on the version.

        The comparison with the champion is what a promotion by hand overrides; the gate is not: a version that
        fails it (`gate`: AUC not above popularity's, miscalibrated, or no stored metrics to tell) is refused unless
        ``force``. The automatic decision stays as it was recorded; a `ManualPromotion` (``by``, default the login
        name; ``at``, default now, in UTC; the previous champion; forced and the failed check) is added as tag
        ``promotion.manual.<n>``. The current champion's own record is left as it is. Promoting the champion changes
        and records nothing.

        Raises:
            RegistryError: an unknown version.
            PromotionRefused: the version fails the gate and ``force`` is False (nothing changed).
        """
        target = self.get(version)
        if CHAMPION in target.aliases:
            return target
        failed = gate(target.metrics)
        previous = self.alias(CHAMPION)
        if failed is not None and not force:
            raise PromotionRefused(version, failed, previous.version if previous is not None else None)
        event = ManualPromotion(
            # Milliseconds, as MLflow times a registration: a history orders promotions within one second.
            at=(at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds"),
            by=by or _login(),
            previous_champion=previous.version if previous is not None else None,
            forced=failed is not None,
            gate=failed,
        )
        client = self.client()
        # The record first: a promotion interrupted between the two leaves a record of an attempt, never a champion
        # without its record.
        number = max((n for n, _ in _manual_tags(target.tags)), default=0) + 1
        client.set_model_version_tag(MODEL_NAME, str(version), f"{MANUAL_PREFIX}{number}", json.dumps(event.as_dict()))
        self._crown(client, version)
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


def _login() -> str:
    """Who is promoting: the login name (``getpass``: LOGNAME, USER... then the password database), else
    ``unknown`` (a container's uid without a name)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _registered(client: Any) -> bool:
    return bool(client.search_registered_models(f"name = '{MODEL_NAME}'"))


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat()
