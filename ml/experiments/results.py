"""Read the published experiment marts and write the results table: the one place that knows the file names.

The marts are Parquet files under <TAILOR_HOME>/marts/ (never the DuckDB file: a run may be writing it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml.experiments.analysis import RESULT_COLUMNS, analyze

STATS = "fct_experiment_stats"
VARIANTS = "dim_experiments"
NOVELTY = "fct_experiment_novelty_stats"
DAILY = "fct_experiment_daily_stats"
RESULTS = "experiment_results"
DAILY_RESULTS = "experiment_daily_results"
DAILY_COLUMNS = [
    "as_of_date", "experiment_id", "metric", "variant", "is_control", "units", "value", "relative_lift",
    "relative_ci_low", "relative_ci_high", "sequential_ci_low", "sequential_ci_high", "p_value_holm", "srm_p",
    "decision",
]  # fmt: skip


@dataclass(frozen=True)
class ExperimentMarts:
    stats: pd.DataFrame
    variants: pd.DataFrame
    novelty: pd.DataFrame | None


def load_marts(marts_dir: Path) -> ExperimentMarts:
    """The stats marts dbt published; a clear error when the warehouse has not been built yet."""
    missing = [name for name in (STATS, VARIANTS) if not (marts_dir / f"{name}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"no published experiment marts ({', '.join(missing)}) in {marts_dir}: run `tailor run` first"
        )
    novelty_path = marts_dir / f"{NOVELTY}.parquet"
    return ExperimentMarts(
        stats=pd.read_parquet(marts_dir / f"{STATS}.parquet"),
        variants=pd.read_parquet(marts_dir / f"{VARIANTS}.parquet"),
        novelty=pd.read_parquet(novelty_path) if novelty_path.exists() else None,
    )


def compute_results(marts_dir: Path, alpha: float = 0.05) -> pd.DataFrame:
    """The results table from the published marts."""
    marts = load_marts(marts_dir)
    return analyze(marts.stats, marts.variants, marts.novelty, alpha=alpha).reindex(columns=RESULT_COLUMNS)


def compute_daily_results(marts_dir: Path, alpha: float = 0.05) -> pd.DataFrame:
    """The results as they stood at the end of each day (cumulative stats): what a daily peek saw. The
    always-valid interval is the one that may be read on any of these days."""
    daily_path = marts_dir / f"{DAILY}.parquet"
    if not daily_path.exists():
        raise FileNotFoundError(f"no published {DAILY} in {marts_dir}: run `tailor run` first")
    daily = pd.read_parquet(daily_path)
    variants = load_marts(marts_dir).variants
    frames = [
        analyze(day_stats, variants, alpha=alpha).assign(as_of_date=as_of)
        for as_of, day_stats in daily.groupby("as_of_date", sort=True)
    ]
    if not frames:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=DAILY_COLUMNS)


def write_results(results: pd.DataFrame, marts_dir: Path, name: str = RESULTS) -> Path:
    """Write a results table next to the marts (atomically: readers never see half a file)."""
    path = marts_dir / f"{name}.parquet"
    partial = path.with_suffix(".parquet.partial")
    results.to_parquet(partial, index=False)
    partial.replace(path)
    return path


def read_results(marts_dir: Path) -> pd.DataFrame:
    """The latest results table; a clear error when no run has produced one."""
    path = marts_dir / f"{RESULTS}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no experiment results in {marts_dir}: run `tailor run` first")
    return pd.read_parquet(path)
