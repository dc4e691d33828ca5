"""Read the published experiment marts and write the results table: the one place that knows the file names.

The marts are Parquet files under <TAILOR_HOME>/marts/ (never the DuckDB file: a run may be writing it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ml.experiments.analysis import RESULT_COLUMNS, analyze, analyze_daily

STATS = "fct_experiment_stats"
VARIANTS = "dim_experiments"
NOVELTY = "fct_experiment_novelty_stats"
DAILY = "fct_experiment_daily_stats"
RESULTS = "experiment_results"
DAILY_RESULTS = "experiment_daily_results"
DAILY_COLUMNS = ["as_of_date", *RESULT_COLUMNS]


@dataclass(frozen=True)
class ExperimentMarts:
    stats: pd.DataFrame
    variants: pd.DataFrame
    novelty: pd.DataFrame | None
    daily: pd.DataFrame | None


def load_marts(marts_dir: Path) -> ExperimentMarts:
    """The stats marts dbt published; a clear error when the warehouse has not been built yet."""
    missing = [name for name in (STATS, VARIANTS) if not (marts_dir / f"{name}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"no published experiment marts ({', '.join(missing)}) in {marts_dir}: run `tailor run` first"
        )
    novelty_path, daily_path = marts_dir / f"{NOVELTY}.parquet", marts_dir / f"{DAILY}.parquet"
    return ExperimentMarts(
        stats=pd.read_parquet(marts_dir / f"{STATS}.parquet"),
        variants=pd.read_parquet(marts_dir / f"{VARIANTS}.parquet"),
        novelty=pd.read_parquet(novelty_path) if novelty_path.exists() else None,
        daily=pd.read_parquet(daily_path) if daily_path.exists() else None,
    )


def compute_results(marts_dir: Path, alpha: float = 0.05) -> pd.DataFrame:
    """The results table from the published marts. The decisions are those of the daily looks (the daily
    cumulative stats replayed through the decision rule), so they equal the last day of
    `compute_daily_results`: a decision taken at an interim look or at the planned-size read stands."""
    marts = load_marts(marts_dir)
    results = analyze(marts.stats, marts.variants, marts.novelty, alpha=alpha, history=marts.daily)
    return results.reindex(columns=RESULT_COLUMNS)


def compute_daily_results(marts_dir: Path, alpha: float = 0.05) -> pd.DataFrame:
    """The results as they stood at the end of each day (cumulative stats): what a daily look saw and what the
    rule allowed it to conclude (always-valid before the planned size, one fixed-horizon read at it)."""
    marts = load_marts(marts_dir)
    if marts.daily is None:
        raise FileNotFoundError(f"no published {DAILY} in {marts_dir}: run `tailor run` first")
    return analyze_daily(marts.daily, marts.variants, alpha=alpha).reindex(columns=DAILY_COLUMNS)


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
    # One thread: the table is small, and a command that only reads it (`tailor experiments`) then never starts
    # Arrow's CPU thread pool, whose teardown at interpreter exit sometimes aborted the process after its output
    # was printed ("terminate called without an active exception", exit -6; apache/arrow#34314).
    return pq.read_table(path, use_threads=False).to_pandas(use_threads=False)


def cuped_metrics(results: pd.DataFrame) -> list[str]:
    """The metrics whose effects and lifts ``results`` (`analyze` rows) adjusted with CUPED, in their order: their
    values stay raw, so effect and lift can differ from the values' difference, even in sign."""
    if "cuped_applied" not in results:
        return []
    return results.loc[results["cuped_applied"].eq(True), "metric"].astype(str).unique().tolist()
