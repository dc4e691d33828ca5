"""The Model and data health page's numbers: the registry's versions and baselines, drift, check results.

Model metrics come from the MLflow registry (`ml.registry.Registry`, read only): every version's test-window
metrics as `ml.ranker` logged them (``classification.<model>.<metric>``, ``ranking.<model>.<metric>``), where
``<model>`` is the ranker and the baselines scored on the same window (naive, popularity, random, constant).
Drift and data-quality results are the asset checks of the newest run that evaluated any (`app.lib.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from app.lib.ui import formatted_table
from ml.monitoring.drift import YOUNG
from tailor.settings import Settings

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

#: Models scored on each version's test window, the ranker first.
MODELS = ("ranker", "naive", "popularity", "random", "constant")
#: Metric -> the prefix it is logged under.
METRICS = {
    "auc": "classification",
    "log_loss": "classification",
    "ece": "classification",
    "ndcg_at_k": "ranking",
    "recall_at_k": "ranking",
    "catalog_coverage": "ranking",
}
DRIFT_CHECKS = ("champion_features_stable", "champion_predictions_stable")
#: The drift table's columns the page shows under each chart (the check's metadata holds more).
DRIFT_TABLE_COLUMNS = ("feature", "status", "excess_psi", "psi", "day_baseline_psi", "noise_psi", "largest_shift")
VERSION_COLUMNS = ["version", "aliases", "created_at", "model", *METRICS, "promotion"]


def model_versions(settings: Settings) -> pd.DataFrame:
    """One row per registered version x model scored on its test window: version, aliases (comma-separated, on the
    ranker's row only: the baselines are not registered),
    created_at, model (`MODELS`), each of `METRICS` (NaN where not logged), promotion (the rule's decision, then
    each promotion by hand: `ml.registry.promotion_lines`).
    Newest version first. Empty when nothing was trained (or the registry does not exist)."""
    if not (settings.models_dir / "mlflow.db").exists():
        return pd.DataFrame(columns=VERSION_COLUMNS)
    from ml.registry import Registry, promotion_history, promotion_lines

    rows = []
    for version in Registry(settings.models_dir).versions():
        promotion = "; ".join(promotion_lines(promotion_history(version)))
        for model in MODELS:
            values = {m: version.metrics.get(f"{prefix}.{model}.{m}") for m, prefix in METRICS.items()}
            if all(v is None for v in values.values()):
                continue
            rows.append(
                {
                    "version": version.version,
                    # The aliases name the registered model; the baselines' rows only carry its test window.
                    "aliases": ", ".join(version.aliases) if model == "ranker" else "",
                    "created_at": pd.Timestamp(version.created_at),
                    "model": model,
                    **values,
                    "promotion": promotion,
                }
            )
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


def styled_versions(versions: pd.DataFrame) -> tuple[Styler, dict[str, Any]]:
    """`model_versions` as shown (`app.lib.ui.formatted_table`: the Styler and its column configuration): metrics
    with four decimals and `NOT_DEFINED` where a model has no value (the random order has no AUC or log loss)."""
    return formatted_table(versions, {m: "{:.4f}" for m in METRICS if m in versions})


@dataclass(frozen=True)
class Drift:
    """One drift check's last evaluation: PSI per feature (or of the predicted click probability)."""

    check: str
    passed: bool
    severity: str
    description: str
    psi: pd.DataFrame  # feature, psi, status, largest_shift, ... (the check's table)
    warn: float
    fail: float
    champion_version: int | None
    current_day: str | None
    reference_window: str | None

    @property
    def not_judged(self) -> list[str]:
        """The features the check did not judge (status ``young``: a window longer than the history before the
        reference); the chart leaves them out (`app.lib.charts.psi_bars`)."""
        return self.psi.loc[self.psi["status"] == YOUNG, "feature"].tolist() if "status" in self.psi else []

    def judged(self, champion_now: int | None) -> str:
        """Whose training window the check compared with: ``Champion v3``, or, when the champion changed since the
        check ran (trained later in the same run, or promoted by hand), ``v2, the champion when the check ran (now
        v3: ...)``. A trial read v2's drift under a page headed "Champion v3"."""
        if champion_now is None or self.champion_version is None or self.champion_version == champion_now:
            return f"Champion v{self.champion_version}"
        return (
            f"v{self.champion_version}, the champion when the check ran (now v{champion_now}: the next `tailor run` "
            f"judges v{champion_now}'s training window)"
        )

    @property
    def nothing_moved(self) -> bool:
        """Whether every judged feature's excess PSI is 0 (nothing beyond a reference day's own PSI or sampling
        noise), so a chart of them would hold no bar."""
        if "excess_psi" not in self.psi:
            return False
        judged = self.psi.loc[~self.psi["feature"].isin(self.not_judged), "excess_psi"]
        return bool(judged.eq(0).all())


def drift(checks: pd.DataFrame) -> list[Drift]:
    """The drift checks among ``checks`` (`app.lib.runs.check_results`), features first."""
    from ml.registry import window_days

    out = []
    for name in DRIFT_CHECKS:
        rows = checks.loc[checks["check"] == name]
        if rows.empty:
            continue
        row = rows.iloc[0]
        meta = row["metadata"] or {}
        table = pd.DataFrame(meta.get("psi") or [], columns=None)
        version = meta.get("champion_version")
        out.append(
            Drift(
                check=name,
                passed=bool(row["passed"]),
                severity=str(row["severity"]),
                description=str(row["description"]),
                psi=table,
                warn=float(meta.get("warn_threshold", 0.1)),
                fail=float(meta.get("fail_threshold", 0.25)),
                champion_version=int(version) if isinstance(version, int | float) else None,
                current_day=meta.get("current_day"),
                # As `tailor models` says it (the days it holds), not the stored start..end-excluded tag (a trial).
                reference_window=window_days(str(meta["reference_window"])) if meta.get("reference_window") else None,
            )
        )
    return out


def quality_checks(checks: pd.DataFrame) -> pd.DataFrame:
    """Every other check (dbt tests, feature store checks): asset, check, result (passed; warned: a WARN-severity
    check that did not pass, the run still succeeded; failed: ERROR), description, evaluated_at. Failed first.

    A dbt test carries no description (dagster-dbt leaves it empty): it says how many rows did not pass and where
    they are, from its row count."""
    rows = checks.loc[~checks["check"].isin(DRIFT_CHECKS)].copy()
    warned = rows["severity"].astype(str) == "WARN"
    rows["result"] = rows["passed"].map({True: "passed"}).fillna(warned.map({True: "warned", False: "failed"}))
    described = [_dbt_description(t, m) for t, m in zip(rows["description"], rows["metadata"], strict=True)]
    rows["description"] = pd.Series(described, index=rows.index, dtype=object)
    return rows[["asset", "check", "result", "description", "evaluated_at"]].reset_index(drop=True)


def _dbt_description(text: object, metadata: object) -> str:
    """A check's description, or for a dbt test without one its failed rows in words (empty when it passed: the
    table showed "None", a trial)."""
    if isinstance(text, str) and text:
        return text
    rows = metadata.get("dagster_dbt/failed_row_count") if isinstance(metadata, dict) else None
    if isinstance(rows, int) and rows:
        return f"{rows:,} row{'s' if rows != 1 else ''} did not pass this dbt test: they are in logs/dbt.log"
    return ""
