"""Benchmark: experiment analysis next to GrowthBook's gbstats 0.8.0, and the experiment marts in dbt at 10M events.

Part 1 (analysis). Seeded unit-level simulations of --experiments two-variant experiments (about 2,000 to 40,000 units
per variant, a third of them A/A) are reduced to sufficient statistics in the shape of `fct_experiment_stats`, five
metrics each: two proportions, a mean with a CUPED covariate, a ratio, a ratio with a CUPED covariate. On the same
inputs it times (wall and CPU medians of --repeats):
  - Tailor's `analyze` (frequentist, Bayesian, sequential, Holm/BH, SRM, decisions; no novelty),
  - Tailor's statistics alone (the comparison of each metric, as `analyze` dispatches it),
  - gbstats' `process_single_metric` (its engine entry point, frequentist, relative and absolute analyses),
  - gbstats' `TwoSidedTTest` alone (relative and absolute),
  - the published-Parquet path: read `fct_experiment_stats` + `dim_experiments` and analyze.
It then reports how closely the two engines agree, by metric kind. gbstats 0.8.0 has no CUPED for ratio
metrics: the ratio-with-covariate metric is compared with Tailor's unadjusted analysis.

Part 2 (dbt, skipped with --skip-dbt). Generates an --events history with the simulator, lands it and runs
`dbt build` once (as bench/bench_pipeline.py does), then reports each experiment model's seconds from dbt's
run_results.json, their tests, the share of the build, exposed units and unit-days, the analysis time on the real
marts, and a DuckDB profile of the slowest experiment model on a copy of the warehouse.

gbstats comes from the project's `bench` dependency group (`make install`); pyproject.toml explains why it runs with
the project's numpy, pandas and scipy rather than the old versions it declares.

Results go to bench/results/experiments.json; a part that is skipped keeps its earlier section of that file.

    .venv/bin/python bench/bench_experiments.py --experiments 100 --events 10000000
    .venv/bin/python bench/bench_experiments.py --experiments 3 --repeats 1 --events 3000 \\
        --output /tmp/experiments.json                                                 # a smoke run, ~30 s
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from bench_pipeline import dbt_env, land_and_build, simulate_history

from ml.experiments.analysis import analyze
from ml.experiments.frequentist import Comparison, compare_means
from ml.experiments.moments import PRODUCT_COLUMNS, SUM_COLUMNS, Moments, compare_moments
from ml.experiments.results import compute_results
from ml.experiments.stats import MeanStats
from tailor.settings import get_settings

BENCH_DIR = Path(__file__).resolve().parent
GBSTATS_VERSION = "0.8.0"
VARIANTS = ("control", "treatment")
# Benchmark metric -> (mart metric_kind, kind label used in the agreement table, role).
METRICS: dict[str, tuple[str, str, str]] = {
    "conversion": ("proportion", "proportion", "primary"),
    "retained": ("proportion", "proportion", "secondary"),
    "revenue_per_user": ("mean", "mean_cuped", "secondary"),
    "session_duration": ("ratio", "ratio", "guardrail"),
    "ctr": ("ratio", "ratio_cuped", "primary"),
}
EXPERIMENT_MODELS = (
    "fct_experiment_units",
    "dim_experiments",
    "int_experiment_unit_days",
    "fct_experiment_stats",
    "fct_experiment_daily_stats",
    "fct_experiment_novelty_stats",
)
FIELDS = (
    "absolute",
    "absolute_ci_low",
    "absolute_ci_high",
    "absolute_p",
    "relative",
    "relative_ci_low",
    "relative_ci_high",
    "relative_p",
)


# ---------------------------------------------------------------- inputs


def _stats_row(
    m: np.ndarray, d: np.ndarray | None = None, x: np.ndarray | None = None, xd: np.ndarray | None = None
) -> dict[str, float | None]:
    """Sufficient statistics of one metric in one variant, summed from unit-level values (mart column names)."""
    values = {0: m, 1: d, 2: x, 3: xd}
    row: dict[str, float | None] = {"n": float(len(m))}
    for i, column in enumerate(SUM_COLUMNS):
        v = values[i]
        row[column] = float(v.sum()) if v is not None else None
    for (i, j), column in PRODUCT_COLUMNS.items():
        a, b = values[i], values[j]
        row[column] = float((a * b).sum()) if a is not None and b is not None else None
    return row


def _variant_units(rng: np.random.Generator, n: int, lift: float) -> dict[str, dict[str, float | None]]:
    """One variant's units, heterogeneous through a shared activity level, with pre-period covariates."""
    factor = 1.0 + lift
    activity = rng.gamma(2.0, 0.5, n)  # mean 1
    converted = (rng.random(n) < np.minimum(1.0, 0.04 * activity * factor)).astype(float)
    retained = (rng.random(n) < np.minimum(1.0, 0.35 * np.sqrt(activity) * factor)).astype(float)
    basket = rng.lognormal(3.0, 0.8, n)
    revenue = rng.poisson(0.3 * activity * factor) * basket
    pre_revenue = rng.poisson(0.3 * activity) * basket
    sessions = rng.poisson(3.0 * activity).astype(float)
    session_seconds = rng.gamma(2.0 * sessions, 120.0 * factor / 2.0)  # shape 0 gives 0 s for 0 sessions
    propensity = rng.beta(2.0, 38.0, n)
    impressions = rng.poisson(20.0 * activity).astype(float)
    clicks = rng.binomial(impressions.astype(int), np.minimum(1.0, propensity * factor)).astype(float)
    pre_impressions = rng.poisson(15.0 * activity).astype(float)
    pre_clicks = rng.binomial(pre_impressions.astype(int), propensity).astype(float)
    return {
        "conversion": _stats_row(converted),
        "retained": _stats_row(retained),
        "revenue_per_user": _stats_row(revenue, x=pre_revenue),
        "session_duration": _stats_row(session_seconds, sessions),
        "ctr": _stats_row(clicks, impressions, pre_clicks, pre_impressions),
    }


def simulate_inputs(experiments: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stats and variants tables of `experiments` simulated experiments (shapes of the marts)."""
    rng = np.random.default_rng(seed)
    stats_rows: list[dict[str, Any]] = []
    variant_rows: list[dict[str, Any]] = []
    for index in range(experiments):
        experiment_id = f"exp_{index:03d}"
        total = int(rng.integers(4_000, 80_001))
        treated = int(rng.binomial(total, 0.5))
        lift = 0.0 if index % 3 == 0 else float(rng.normal(0.0, 0.04))
        for variant, n, variant_lift in (("control", total - treated, 0.0), ("treatment", treated, lift)):
            variant_rows.append(
                {
                    "experiment_id": experiment_id,
                    "variant": variant,
                    "is_control": variant == "control",
                    "weight": 0.5,
                    "planned_units_per_variant": 20_000,
                }
            )
            for metric, row in _variant_units(rng, n, variant_lift).items():
                kind, _, role = METRICS[metric]
                stats_rows.append(
                    {
                        "experiment_id": experiment_id,
                        "variant": variant,
                        "metric": metric,
                        "metric_kind": kind,
                        "metric_role": role,
                        "non_inferiority_margin": 0.05 if role == "guardrail" else None,
                        "higher_is_better": True,
                        **row,
                        "n": n,
                    }
                )
    return pd.DataFrame(stats_rows), pd.DataFrame(variant_rows)


# ---------------------------------------------------------------- gbstats


def import_gbstats() -> Any:
    """gbstats' engine module, checked to be the version the figures in docs/benchmarks.md were made with.

    Raises:
        SystemExit: gbstats is missing or another version (it comes with `make install`).
    """
    try:
        installed = importlib.metadata.version("gbstats")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != GBSTATS_VERSION:
        found = f"gbstats {installed} is installed" if installed else "gbstats is not installed"
        raise SystemExit(
            f"{found}; this benchmark compares with gbstats {GBSTATS_VERSION}, "
            "which the project's `bench` dependency group installs: run `make install`."
        )
    import gbstats.gbstats as engine

    return engine


def _gb_inputs(stats: pd.DataFrame) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Per experiment x metric: the rows GrowthBook's SQL would return (one per variation)."""
    out = []
    for (experiment_id, metric), group in stats.groupby(["experiment_id", "metric"], sort=True):
        rows = []
        for r in group.to_dict("records"):
            row = {
                "dimension": "All",
                "variation": r["variant"],
                "users": int(r["n"]),
                "count": int(r["n"]),
                "main_sum": r["sum"],
                "main_sum_squares": r["sum_squares"],
            }
            if METRICS[str(metric)][1].startswith("ratio"):
                row |= {k: r[k] for k in ("denominator_sum", "denominator_sum_squares", "main_denominator_sum_product")}
            if METRICS[str(metric)][1] == "mean_cuped":
                row |= {k: r[k] for k in ("covariate_sum", "covariate_sum_squares", "main_covariate_sum_product")}
            rows.append(row)
        out.append((str(experiment_id), str(metric), rows))
    return out


def _gb_metric(engine: Any, metric: str) -> Any:
    """gbstats metric settings: binomial proportions, count means (regression-adjusted), count ratios."""
    label = METRICS[metric][1]
    if label == "proportion":
        return engine.MetricSettingsForStatsEngine(
            id=metric, name=metric, statistic_type="mean", main_metric_type="binomial"
        )
    if label == "mean_cuped":
        return engine.MetricSettingsForStatsEngine(
            id=metric, name=metric, statistic_type="mean_ra", main_metric_type="count", covariate_metric_type="count"
        )
    # gbstats 0.8.0 has no regression adjustment for ratio metrics: both ratios are plain ratios there.
    return engine.MetricSettingsForStatsEngine(
        id=metric, name=metric, statistic_type="ratio", main_metric_type="count", denominator_metric_type="count"
    )


def _gb_analyses(engine: Any, alpha: float) -> list[Any]:
    return [
        engine.AnalysisSettingsForStatsEngine(
            var_names=list(VARIANTS),
            var_ids=list(VARIANTS),
            weights=[0.5, 0.5],
            stats_engine="frequentist",
            difference_type=kind,
            alpha=alpha,
        )
        for kind in ("relative", "absolute")
    ]


def run_gbstats(engine: Any, inputs: list[tuple[str, str, list[dict[str, Any]]]], alpha: float) -> pd.DataFrame:
    """gbstats' engine entry point per experiment x metric; one row per comparison with both analyses."""
    analyses = _gb_analyses(engine, alpha)
    out = []
    for experiment_id, metric, rows in inputs:
        result = engine.process_single_metric(rows, _gb_metric(engine, metric), analyses)
        rel, ab = (a.dimensions[0] for a in result.analyses)
        r, a = rel.variations[1], ab.variations[1]
        out.append(
            {
                "experiment_id": experiment_id,
                "metric": metric,
                "srm_p": rel.srm,
                "relative": r.expected,
                "relative_ci_low": r.ci[0],
                "relative_ci_high": r.ci[1],
                "relative_p": r.pValue,
                "absolute": a.expected,
                "absolute_ci_low": a.ci[0],
                "absolute_ci_high": a.ci[1],
                "absolute_p": a.pValue,
                "error": r.errorMessage or a.errorMessage,
            }
        )
    return pd.DataFrame(out)


def _gb_statistic(metric: str, r: dict[str, Any]) -> Any:
    from gbstats.models.statistics import (
        ProportionStatistic,
        RatioStatistic,
        RegressionAdjustedStatistic,
        SampleMeanStatistic,
    )

    label, n = METRICS[metric][1], int(r["count"])
    if label == "proportion":
        return ProportionStatistic(n=n, sum=r["main_sum"])
    main = SampleMeanStatistic(n=n, sum=r["main_sum"], sum_squares=r["main_sum_squares"])
    if label == "mean_cuped":
        pre = SampleMeanStatistic(n=n, sum=r["covariate_sum"], sum_squares=r["covariate_sum_squares"])
        return RegressionAdjustedStatistic(
            n=n,
            post_statistic=main,
            pre_statistic=pre,
            post_pre_sum_of_products=r["main_covariate_sum_product"],
            theta=0,
        )
    den = SampleMeanStatistic(n=n, sum=r["denominator_sum"], sum_squares=r["denominator_sum_squares"])
    return RatioStatistic(n=n, m_statistic=main, d_statistic=den, m_d_sum_of_products=r["main_denominator_sum_product"])


def gbstats_tests_only(inputs: list[tuple[str, str, list[dict[str, Any]]]], alpha: float) -> None:
    """gbstats' statistics without its DataFrame plumbing: a TwoSidedTTest per comparison and difference type."""
    from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest

    for _, metric, rows in inputs:
        for kind in ("relative", "absolute"):
            # Fresh statistics each time: the test object writes the CUPED theta into them.
            test = TwoSidedTTest(
                _gb_statistic(metric, rows[0]),
                _gb_statistic(metric, rows[1]),
                FrequentistConfig(difference_type=kind, alpha=alpha),
            )
            test.compute_result()


def gbstats_theta(metric: str, rows: list[dict[str, Any]]) -> float:
    from gbstats.models.statistics import compute_theta

    return float(compute_theta(_gb_statistic(metric, rows[0]), _gb_statistic(metric, rows[1])))


# ---------------------------------------------------------------- Tailor


def tailor_statistics_only(pairs: list[tuple[dict[str, Any], dict[str, Any]]], alpha: float) -> None:
    """Tailor's comparisons alone, on rows taken out of the table beforehand (as gbstats' inputs are)."""
    for base, row in pairs:
        _tailor_compare(base, row, alpha)


def _pair(stats: pd.DataFrame, experiment_id: str, metric: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The control and treatment rows of one comparison ('control' sorts before 'treatment')."""
    group = stats[(stats["experiment_id"] == experiment_id) & (stats["metric"] == metric)].sort_values("variant")
    base, row = ({str(k): v for k, v in r.items()} for r in group.to_dict("records"))
    return base, row


def _tailor_compare(base: dict[str, Any], row: dict[str, Any], alpha: float) -> Comparison:
    c, t = Moments.from_row(base), Moments.from_row(row)
    if row["metric_kind"] == "ratio" or (c.has_covariate and t.has_covariate):
        return compare_moments(c, t, alpha).comparison
    as_stats = [MeanStats(n=int(r["n"]), sum=r["sum"], sum_squares=r["sum_squares"]) for r in (base, row)]
    return compare_means(as_stats[0], as_stats[1], alpha)


def _treatment_rows(results: pd.DataFrame) -> pd.DataFrame:
    treated = results[~results["is_control"].astype(bool)].rename(
        columns={"absolute_effect": "absolute", "relative_lift": "relative"}
    )
    return treated.set_index(["experiment_id", "metric"])


# ---------------------------------------------------------------- part 1


def median_seconds(func: Callable[[], object], repeats: int) -> tuple[float, float, list[float]]:
    """Median wall and CPU seconds of `repeats` calls (CPU time is the steadier figure on a shared machine)."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        func()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus), walls


def agreement(tailor: pd.DataFrame, tailor_plain: pd.DataFrame, gb: pd.DataFrame) -> dict[str, Any]:
    """Max absolute difference of each number, by metric kind (ratio_cuped: against Tailor without CUPED)."""
    gb = gb.set_index(["experiment_id", "metric"])
    out: dict[str, Any] = {}
    for label in dict.fromkeys(v[1] for v in METRICS.values()):
        metrics = [m for m, v in METRICS.items() if v[1] == label]
        source = tailor_plain if label == "ratio_cuped" else tailor
        ours = source[source.index.get_level_values("metric").isin(metrics)]
        theirs = gb.loc[ours.index]
        gaps = {f: (ours[f].astype(float) - theirs[f].astype(float)).abs() for f in FIELDS}
        half_ours = (ours["absolute_ci_high"] - ours["absolute_ci_low"]) / 2
        half_theirs = (theirs["absolute_ci_high"] - theirs["absolute_ci_low"]) / 2
        half_relative = (ours["relative_ci_high"] - ours["relative_ci_low"]) / 2
        # Scale-free: a gap in an estimate or bound as a share of Tailor's CI half-width for that number.
        scaled = {f: gaps[f] / (half_ours if f.startswith("absolute") else half_relative) for f in FIELDS}
        out[label] = {
            "comparisons": len(ours),
            "max_abs_diff": {f: float(f"{v.max():.3g}") for f, v in gaps.items()},
            "max_diff_in_ci_halfwidths": {
                f: float(f"{v.max():.3g}") for f, v in scaled.items() if not f.endswith("_p")
            },
            "absolute_ci_halfwidth_ratio_gbstats_to_tailor": [
                round(float((half_theirs / half_ours).min()), 6),
                round(float((half_theirs / half_ours).max()), 6),
            ],
            "median_abs_relative_lift": round(float(ours["relative"].abs().median()), 5),
            "same_significance_at_alpha": float(((ours["absolute_p"] < 0.05) == (theirs["absolute_p"] < 0.05)).mean()),
        }
    out["srm_p_max_abs_diff"] = float(f"{(tailor['srm_p'] - gb['srm_p'].loc[tailor.index]).abs().max():.3g}")
    out["gbstats_errors"] = int(gb["error"].notna().sum())
    return out


def cuped_explanation(
    stats: pd.DataFrame, inputs: list[tuple[str, str, list[dict[str, Any]]]], gb: pd.DataFrame
) -> dict[str, Any]:
    """The mean-with-CUPED gap is the slope: gbstats fits theta on both arms pooled as one sample (treatment
    effect included), Tailor pools the within-arm co-moments. With gbstats' theta, Tailor's absolute effect
    (difference of post means minus theta times difference of pre means) reproduces gbstats' to rounding."""
    gb_absolute = gb.set_index(["experiment_id", "metric"])["absolute"].to_dict()
    theta_gaps, residuals = [], []
    for experiment_id, metric, rows in inputs:
        if METRICS[metric][1] != "mean_cuped":
            continue
        base, row = _pair(stats, experiment_id, metric)
        theta_tailor = compare_moments(Moments.from_row(base), Moments.from_row(row)).theta
        theta_gb = gbstats_theta(metric, rows)
        theta_gaps.append(abs(theta_gb / theta_tailor - 1))
        post = row["sum"] / row["n"] - base["sum"] / base["n"]
        pre = row["covariate_sum"] / row["n"] - base["covariate_sum"] / base["n"]
        residuals.append(abs(post - theta_gb * pre - gb_absolute[(experiment_id, metric)]))
    return {
        "theta_relative_gap_median": float(f"{np.median(theta_gaps):.3g}"),
        "theta_relative_gap_max": float(f"{max(theta_gaps):.3g}"),
        "absolute_with_gbstats_theta_max_abs_diff": float(f"{max(residuals):.3g}"),
    }


def run_analysis(experiments: int, repeats: int, seed: int, alpha: float, work: Path) -> dict[str, Any]:
    start = time.perf_counter()
    stats, variants = simulate_inputs(experiments, seed)
    simulate_s = time.perf_counter() - start
    engine = import_gbstats()
    inputs = _gb_inputs(stats)
    pairs = [_pair(stats, experiment_id, metric) for experiment_id, metric, _ in inputs]

    marts = work / "marts"
    marts.mkdir(parents=True)
    stats.to_parquet(marts / "fct_experiment_stats.parquet", index=False)
    variants.to_parquet(marts / "dim_experiments.parquet", index=False)

    timings: dict[str, Any] = {}
    for name, func in (
        ("tailor_analyze", lambda: analyze(stats, variants, alpha=alpha)),
        ("tailor_parquet_load_and_analyze", lambda: compute_results(marts, alpha=alpha)),
        ("tailor_statistics_only", lambda: tailor_statistics_only(pairs, alpha)),
        ("gbstats_process_single_metric", lambda: run_gbstats(engine, inputs, alpha)),
        ("gbstats_two_sided_ttest_only", lambda: gbstats_tests_only(inputs, alpha)),
    ):
        func()  # warm-up: imports and caches are not what is measured
        median, cpu, walls = median_seconds(func, repeats)
        timings[name] = {
            "median_s": round(median, 4),
            "median_cpu_s": round(cpu, 4),
            "runs_s": [round(t, 4) for t in walls],
        }
        print(f"{name}: {median:.3f} s wall, {cpu:.3f} s CPU (medians of {repeats})", flush=True)

    tailor = _treatment_rows(analyze(stats, variants, alpha=alpha))
    tailor_plain = _treatment_rows(analyze(stats, variants, alpha=alpha, use_cuped=False))
    gb = run_gbstats(engine, inputs, alpha)
    ctr = tailor.xs("ctr", level="metric")
    units = stats[stats["metric"] == "conversion"].groupby("experiment_id")["n"].sum()
    return {
        "experiments": experiments,
        "metrics_per_experiment": len(METRICS),
        "comparisons": len(inputs),
        "units_per_experiment": {"min": int(units.min()), "median": int(units.median()), "max": int(units.max())},
        "simulate_inputs_s": round(simulate_s, 2),
        "repeats": repeats,
        "timings": timings,
        "tailor_per_comparison_ms": round(timings["tailor_analyze"]["median_s"] / len(inputs) * 1000, 3),
        "gbstats_per_comparison_ms": round(
            timings["gbstats_process_single_metric"]["median_s"] / len(inputs) * 1000, 3
        ),
        "agreement": agreement(tailor, tailor_plain, gb),
        "mean_cuped_theta": cuped_explanation(stats, inputs, gb),
        "ratio_cuped_tailor_variance_reduction_median": round(float(ctr["variance_reduction"].median()), 4),
    }


# ---------------------------------------------------------------- part 2


def _experiment_test_seconds(target: Path, results: list[dict[str, Any]]) -> float:
    """Seconds of the data tests attached to the experiment models (from the manifest's dependencies)."""
    manifest = json.loads((target / "manifest.json").read_text())
    wanted = {f"model.tailor.{name}" for name in EXPERIMENT_MODELS}
    tests = {
        uid
        for uid, node in manifest["nodes"].items()
        if uid.startswith("test.") and wanted & set(node.get("depends_on", {}).get("nodes", []))
    }
    return sum(r["execution_time"] for r in results if r["unique_id"] in tests)


def _profile(warehouse: Path, compiled: Path, work: Path, top: int = 8) -> dict[str, Any]:
    """DuckDB's profile of one compiled model, rebuilt on a copy of the warehouse: the slowest operators."""
    copy_dir = work / "profile"
    copy_dir.mkdir()
    shutil.copy(warehouse, copy_dir / warehouse.name)  # same file name: the compiled SQL names the catalog
    output = copy_dir / "profile.json"
    con = duckdb.connect(str(copy_dir / warehouse.name))
    try:
        con.execute("set enable_profiling = 'json'")
        con.execute(f"set profiling_output = '{output}'")
        con.execute(f"create temp table profiled as {compiled.read_text()}")
    finally:
        con.close()
    profile = json.loads(output.read_text())

    def walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for node in nodes:
            yield node
            yield from walk(node.get("children", []))

    operators = sorted(walk(profile["operator"]), key=lambda n: float(n.get("timing", 0.0)), reverse=True)
    detail_keys = ("Join Type", "Conditions", "Groups", "Aggregates", "Function", "Partition By")
    return {
        "query_s": round(float(profile["query"]["total_time"]), 2),
        "cpu_s": round(float(profile["query"]["cpu_time"]), 2),
        "peak_buffer_memory_mb": round(profile["system"]["peak_buffer_memory"] / 2**20),
        "spilled_mb": round(profile["system"]["total_bytes_spilled"] / 2**20),
        # Operator timings are summed over threads (CPU seconds), so they add up to cpu_s, not to query_s.
        "top_operators": [
            {
                "operator": n["name"],
                "cpu_s": round(float(n.get("timing", 0.0)), 2),
                "rows_out": int(n.get("intermediate_rows", 0)),
                "detail": "; ".join(f"{k}: {n['extra_info'][k]}" for k in detail_keys if k in n.get("extra_info", {}))[
                    :160
                ],
            }
            for n in operators[:top]
        ],
    }


def run_dbt(target_events: int, seed: int, alpha: float, work: Path) -> dict[str, Any]:
    generated = work / "generated"
    config, simulate_s = simulate_history(target_events, seed, generated)
    settings = get_settings(work / "home")
    target = work / "target"
    land_s, build_s = land_and_build(generated, dbt_env(settings, work))

    results = json.loads((target / "run_results.json").read_text())["results"]
    seconds = {
        r["unique_id"].split(".")[-1]: r["execution_time"] for r in results if r["unique_id"].startswith("model.")
    }
    models = {name: round(seconds[name], 2) for name in EXPERIMENT_MODELS}
    experiment_models_s = sum(seconds[name] for name in EXPERIMENT_MODELS)
    tests_s = _experiment_test_seconds(target, results)
    all_nodes_s = sum(r["execution_time"] for r in results)

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:

        def count(table: str, what: str = "count(*)", where: str = "true") -> int:
            schema = con.execute(f"select table_schema from information_schema.tables where table_name = '{table}'")
            name = f"{schema.fetchall()[0][0]}.{table}"
            return int(con.execute(f"select {what} from {name} where {where}").fetchall()[0][0])

        analysed = "not is_crossover and not is_unknown_variant"
        counts = {
            "events_received": count("stg_landing__events"),
            "events_accepted": count("fct_events"),
            "experiments": count("fct_experiment_units", "count(distinct experiment_id)"),
            "exposed_units": count("fct_experiment_units"),
            "analysed_units": count("fct_experiment_units", where=analysed),
            "unit_days": count("int_experiment_unit_days"),
            "stats_rows": count("fct_experiment_stats"),
            "daily_stats_rows": count("fct_experiment_daily_stats"),
            "novelty_stats_rows": count("fct_experiment_novelty_stats"),
        }
    finally:
        con.close()

    load_analyze_s, _, _ = median_seconds(lambda: compute_results(settings.marts_dir, alpha=alpha), 3)
    slowest = max(EXPERIMENT_MODELS, key=lambda name: seconds[name])
    compiled = next((target / "compiled").rglob(f"{slowest}.sql"))
    profile = _profile(settings.warehouse, compiled, work)
    return {
        "target_events": target_events,
        "users": config.users,
        "days": config.days,
        **counts,
        "simulate_s": round(simulate_s, 2),
        "land_s": round(land_s, 2),
        "dbt_build_s": round(build_s, 2),
        "experiment_models_s": models,
        "experiment_models_total_s": round(experiment_models_s, 2),
        "experiment_model_tests_s": round(tests_s, 2),
        # dbt runs 2 threads, so node seconds overlap: the share of all node seconds is the fairer one.
        "experiment_share_of_build": round((experiment_models_s + tests_s) / build_s, 3),
        "experiment_share_of_node_seconds": round((experiment_models_s + tests_s) / all_nodes_s, 3),
        "all_models_s": round(sum(seconds.values()), 2),
        "all_nodes_s": round(all_nodes_s, 2),
        "real_marts_load_and_analyze_with_novelty_s": round(load_analyze_s, 3),
        "profiled_model": slowest,
        "profile_top_operators": profile,
    }


# ---------------------------------------------------------------- main


def _machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    ram = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(ram / 2**20, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=100, help="Simulated experiments to analyse (default 100).")
    parser.add_argument("--repeats", type=int, default=7, help="Timed repeats per engine; the median is reported.")
    parser.add_argument("--alpha", type=float, default=0.05, help="Significance level on both sides (default 0.05).")
    parser.add_argument("--seed", type=int, default=11, help="Seed of the simulations (default 11).")
    parser.add_argument("--events", type=int, default=10_000_000, help="Events of the dbt history (default 10M).")
    parser.add_argument("--skip-dbt", action="store_true", help="Run only part 1 (the analysis benchmark).")
    parser.add_argument("--skip-analysis", action="store_true", help="Run only part 2 (the dbt benchmark).")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    parser.add_argument(
        "--output", type=Path, default=BENCH_DIR / "results" / "experiments.json", help="Results file (JSON)."
    )
    args = parser.parse_args()
    if args.workdir is not None:  # a folder named but not made yet is made, as a scratch folder should be
        args.workdir.mkdir(parents=True, exist_ok=True)
    if args.experiments < 1 or args.repeats < 1:
        parser.error("--experiments and --repeats must be at least 1")

    out: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    out["benchmark"] = "experiments"
    command = "python bench/bench_experiments.py " + " ".join(sys.argv[1:])

    def stamp() -> dict[str, Any]:
        """When each part started and how busy the machine was then (timings on a shared machine vary)."""
        return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": _machine(), "command": command}

    work = Path(tempfile.mkdtemp(prefix="tailor-bench-experiments-", dir=args.workdir))
    try:
        if not args.skip_analysis:
            out["analysis"] = {
                **stamp(),
                **run_analysis(args.experiments, args.repeats, args.seed, args.alpha, work / "analysis"),
            }
            print(json.dumps(out["analysis"]["agreement"], indent=1), flush=True)
        if not args.skip_dbt:
            out["dbt"] = {**stamp(), **run_dbt(args.events, args.seed, args.alpha, work / "dbt")}
            print(json.dumps({k: v for k, v in out["dbt"].items() if k != "machine"}, indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
