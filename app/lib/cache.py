"""Streamlit caching for the pages: every read is keyed on the home and the stamp (mtime, size) of its input files,
so a run that republishes a mart invalidates exactly the views that read it, and nothing else.

The functions here are the only place that touches ``st.cache_data`` / ``st.cache_resource``; the logic they wrap
lives in the other `app.lib` modules and is called with the resolved Settings.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from app.lib import experiments, marts, overview, preview, runs
from tailor.settings import Settings, get_settings

if TYPE_CHECKING:
    from evaluation.ranking_truth import TruthClickModel
    from ml.recommend import Recommender

#: Cached Dagster reads also expire after this many seconds: a run's progress is not a file stamp.
RUNS_TTL_S = 30


def settings() -> Settings:
    """The home the app reads (``TAILOR_HOME``, default ./data), resolved on every rerun (cheap)."""
    return get_settings()


def _settings(home: str) -> Settings:
    return get_settings(home)


def file_stamp(paths: list[Path]) -> tuple[tuple[str, int | None], ...]:
    """(path, mtime in ns or None) of each file: a cache key for files outside the marts (registry, truth)."""
    out: list[tuple[str, int | None]] = []
    for path in paths:
        try:
            out.append((str(path), path.stat().st_mtime_ns))
        except FileNotFoundError:
            out.append((str(path), None))
    return tuple(out)


# -- overview -----------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def daily_kpis(home: str, stamp: marts.Stamp) -> pd.DataFrame:
    return overview.daily_kpis(_settings(home))


@st.cache_data(show_spinner=False, max_entries=8)
def freshness(home: str, stamp: marts.Stamp) -> overview.Freshness:
    return overview.freshness(_settings(home))


@st.cache_data(show_spinner=False, max_entries=8)
def quarantine(home: str, stamp: marts.Stamp) -> overview.Quarantine:
    return overview.quarantine(_settings(home))


@st.cache_data(show_spinner=False, ttl=RUNS_TTL_S, max_entries=4)
def recent_runs(home: str) -> pd.DataFrame:
    return runs.recent_runs(_settings(home))


@st.cache_data(show_spinner=False, ttl=RUNS_TTL_S, max_entries=4)
def check_results(home: str) -> pd.DataFrame:
    return runs.check_results(_settings(home))


@st.cache_data(show_spinner=False, ttl=RUNS_TTL_S, max_entries=4)
def last_materializations(home: str) -> pd.DataFrame:
    return runs.last_materializations(_settings(home))


# -- experiments --------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def experiment_list(home: str, stamp: marts.Stamp) -> list[experiments.ExperimentStatus]:
    return experiments.experiment_list(_settings(home))


@st.cache_data(show_spinner=False, max_entries=64)
def experiment_results(home: str, stamp: marts.Stamp, experiment_id: str) -> pd.DataFrame:
    return experiments.results_for(_settings(home), experiment_id)


@st.cache_data(show_spinner=False, max_entries=64)
def experiment_daily(home: str, stamp: marts.Stamp, experiment_id: str) -> pd.DataFrame:
    return experiments.daily_for(_settings(home), experiment_id)


@st.cache_data(show_spinner=False, max_entries=64)
def experiment_novelty(home: str, stamp: marts.Stamp, experiment_id: str) -> pd.DataFrame:
    return experiments.novelty_for(_settings(home), experiment_id)


@st.cache_data(show_spinner=False, max_entries=64)
def experiment_plan(
    home: str, stamp: marts.Stamp, baseline: float, mde: float, relative: bool, units_now: int | None
) -> experiments.Plan:
    return experiments.plan(_settings(home), baseline, mde, relative, units_now=units_now)


# -- preview ------------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def picker_users(home: str, stamp: marts.Stamp) -> list[str]:
    return preview.picker_users(_settings(home))


@st.cache_data(show_spinner=False, max_entries=8)
def preview_moment(home: str, stamp: marts.Stamp) -> datetime:
    return preview.preview_moment(_settings(home))


@st.cache_data(show_spinner=False, max_entries=256)
def profile(home: str, stamp: marts.Stamp, user_id: str) -> dict[str, Any] | None:
    return preview.profile(_settings(home), user_id)


@st.cache_data(show_spinner=False, max_entries=256)
def recent_history(home: str, stamp: marts.Stamp, user_id: str) -> pd.DataFrame:
    return preview.recent_history(_settings(home), user_id)


@st.cache_resource(
    show_spinner="Loading the recommender (the champion, the candidates, every item's features)...", max_entries=2
)
def recommender(home: str, stamp: tuple[Any, ...]) -> Recommender:
    """One `Recommender` per home and published state: a new run (new marts or a new champion) opens a new one."""
    return preview.open_recommender(_settings(home))


@st.cache_resource(show_spinner="Reading the simulator's ground truth...", max_entries=2)
def truth(folder: str, stamp: tuple[Any, ...]) -> TruthClickModel:
    return preview.open_truth(Path(folder))


def recommender_stamp(settings: Settings) -> tuple[Any, ...]:
    """What a recommender depends on: the marts it reads, the registry database, the candidates file."""
    models = settings.models_dir
    return (
        marts.stamp(settings, preview.INPUTS),
        file_stamp(
            [models / "mlflow.db", models / "candidates.pkl", settings.marts_dir / "batch_recommendations.parquet"]
        ),
    )


# -- health -------------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=4)
def model_versions(home: str, stamp: tuple[Any, ...]) -> pd.DataFrame:
    from app.lib import health

    return health.model_versions(_settings(home))
