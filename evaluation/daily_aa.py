"""Daily A/A experiments through the real marts: how often a decision rule calls a winner where there is none.

A world is simulated with many A/A experiments (`target="none"`: both arms identical), landed and built by dbt
like any history (the caller does that: `tailor ingest` + `dbt build`), and its daily cumulative stats
(`fct_experiment_daily_stats`: growing per-unit totals of units exposed so far) are judged day by day by
`ml.experiments.analysis.analyze_daily`, as the `experiment_daily_results` asset does. Each experiment is one
trial of the family-wise error: a false positive is any better/worse label on any of its non-guardrail metrics
on any day.

Trials of one world share its users and their activity. Their splits are independent hashes of (experiment id,
user id), so under the null two experiments' effect estimates are uncorrelated, but not independent (the same
heavy users sit in both, in random arms). `summarize` therefore reports a standard error clustered by world (the
spread of per-world rates) next to the binomial one.

The A/A experiments are not in the registry seed; `registry` gives them their configured split and, optionally,
a planned size, the way `dbt_project/seeds/experiments.csv` would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import cycle, islice
from typing import Any

import pandas as pd
from scipy import stats

from ml.experiments.analysis import analyze_daily
from ml.experiments.sequential import always_valid_p
from simulator import SimulationConfig
from simulator.config import ExperimentConfig

AA_PREFIX = "aa"
#: Starts and surfaces cycle over the experiments, so they differ in when and how often units enter.
START_FRACTIONS = (0.2, 0.3, 0.4)
SURFACES: tuple[tuple[str, ...], ...] = (("home", "feed"), ("feed",), ("home",))
RULES = ("rule_planned", "rule_unplanned", "naive_daily_holm", "planned_read_only")


def aa_world_config(
    seed: int, experiments: int, users: int = 1_000, days: int = 21, **changes: Any
) -> SimulationConfig:
    """A world with `experiments` A/A experiments and no others, ids unique to the seed (a new split per world),
    Parquet output and no delivery faults (the ingestion's concern, not the statistics')."""
    if not 1 <= experiments <= 120:
        raise ValueError(
            f"experiments must be 1-120 (the simulator stores experiment indexes as int8), got {experiments}"
        )
    configs = tuple(
        ExperimentConfig(f"{AA_PREFIX}{seed}_{i:03d}", target="none", start_fraction=start, surfaces=surfaces)
        for i, start, surfaces in islice(
            zip(range(experiments), cycle(START_FRACTIONS), cycle(SURFACES), strict=False), experiments
        )
    )
    return SimulationConfig(
        users=users,
        days=days,
        seed=seed,
        format="parquet",
        duplicate_rate=0.0,
        late_rate=0.0,
        malformed_rate=0.0,
        experiments=configs,
        **changes,
    )


def registry(dims: pd.DataFrame, stats: pd.DataFrame, plan_share: float | None) -> pd.DataFrame:
    """dim_experiments for the A/A experiments with a 50/50 split, `control` as control, and a planned size of
    `plan_share` of the units per variant each experiment reached by the last day (None: no plan).

    The plan comes from the final count of units, never from outcomes, so it cannot favour either rule."""
    arms = dims[dims["experiment_id"].str.startswith(AA_PREFIX)].copy()
    arms["weight"] = 0.5
    arms["is_control"] = arms["variant"] == "control"
    arms["planned_units_per_variant"] = None
    if plan_share is not None:
        # n is per variant; the plan is a share of the smaller arm's final units.
        planned = stats.groupby(["experiment_id", "variant"])["n"].max().groupby("experiment_id").min()
        arms["planned_units_per_variant"] = arms["experiment_id"].map((planned * plan_share).round().astype(int))
    return arms


def false_positives(
    daily: pd.DataFrame, stats: pd.DataFrame, dims: pd.DataFrame, alpha: float = 0.05, plan_share: float = 0.75
) -> pd.DataFrame:
    """One row per A/A experiment: whether each rule called any non-guardrail metric better/worse on any day.

    rule_planned / rule_unplanned: the decision rule with a planned size at `plan_share` of the final units
        (reached about halfway through the looks, units arriving fast at first), and without one.
    naive_daily_holm: the fixed-horizon Holm p < alpha on any day (what unplanned experiments got before).
    planned_read_only: the fixed-horizon Holm p < alpha at the planned read alone (a fixed-horizon test: ~alpha).
    cs_hits / comparisons: comparisons whose always-valid interval at the full alpha, uncorrected, excluded 0 on
    some day (the confidence sequence's own error on cumulative per-unit metrics), out of all.
    guardrail_breached: the guardrail's non-inferiority test failed on some day (planned rule).
    read_z_<metric>: each family metric's z = effect / standard error at the planned read (standard normal if the
    fixed-horizon standard errors are right).
    """
    planned = analyze_daily(daily, registry(dims, stats, plan_share), alpha=alpha)
    unplanned = analyze_daily(daily, registry(dims, stats, None), alpha=alpha)
    rows = []
    for experiment_id, rows_planned in planned.groupby("experiment_id", sort=True):
        rows_unplanned = unplanned[unplanned["experiment_id"] == experiment_id]
        family_p = _family(rows_planned)
        family_u = _family(rows_unplanned)
        read = _read_day(rows_planned)
        at_read = family_p[family_p["as_of_date"] == read] if read is not None else family_p.iloc[0:0]
        hits, comparisons = _sequence_hits(rows_unplanned, alpha)
        columns = (at_read["metric"], at_read["absolute_effect"], at_read["absolute_se"])
        read_z = {
            f"read_z_{metric!s}": float(effect) / float(se)
            for metric, effect, se in zip(*columns, strict=True)
            if not pd.isna(se) and float(se) > 0
        }
        rows.append(
            {
                **read_z,
                "experiment_id": experiment_id,
                "days": int(rows_planned["as_of_date"].nunique()),
                "units_per_variant": int(rows_planned["units"].max()),
                "rule_planned": bool(family_p["decision"].isin(["better", "worse"]).any()),
                "rule_unplanned": bool(family_u["decision"].isin(["better", "worse"]).any()),
                "naive_daily_holm": bool((family_u["p_value_holm"] < alpha).any()),
                "planned_read_only": bool((at_read["p_value_holm"] < alpha).any()),
                "read_reached": read is not None,
                "cs_hits": hits,
                "comparisons": comparisons,
                "guardrail_breached": bool((rows_planned["decision"] == "guardrail_breached").any()),
            }
        )
    return pd.DataFrame(rows)


def _family(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[~rows["is_control"].astype(bool) & (rows["metric_role"] != "guardrail")]


def _read_day(rows: pd.DataFrame) -> Any:
    read = rows.loc[rows["decision_basis"] == "fixed_horizon", "decided_on"].dropna()
    return None if read.empty else read.iloc[0]


def _sequence_hits(rows: pd.DataFrame, alpha: float) -> tuple[int, int]:
    """Comparisons whose always-valid p (uncorrected, level and tuning alpha, tightest at the experiment's final
    size: the most sensitive choice) fell below alpha on some day."""
    controls = rows[rows["is_control"].astype(bool)]
    control_units = {(a, m): int(u) for a, m, u in zip(controls["as_of_date"], controls["metric"], controls["units"],
                                                        strict=True)}  # fmt: skip
    treated = _family(rows).dropna(subset=["absolute_se"])
    tuned = 2 * int(rows["units"].max())
    hit: dict[str, bool] = {}
    columns = ("as_of_date", "metric", "units", "absolute_effect", "absolute_se")
    for as_of, metric, units, effect, se in zip(*(treated[c] for c in columns), strict=True):
        both = int(units) + control_units.get((as_of, metric), 0)
        p = always_valid_p(float(effect), float(se), both, tuned, alpha)
        hit[str(metric)] = hit.get(str(metric), False) or p < alpha
    return sum(hit.values()), len(hit)


def summarize(trials: pd.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """Rates over all trials (column `world` names each trial's world), each with a binomial and a world-clustered
    standard error and a one-sided 95% upper bound from the larger of the two."""
    out: dict[str, Any] = {"trials": len(trials), "worlds": int(trials["world"].nunique()), "alpha": alpha}
    for rule in (*RULES, "guardrail_breached"):
        out[rule] = _rate(trials[rule].astype(float), trials["world"])
    out["cs_per_comparison"] = _rate(trials["cs_hits"] / trials["comparisons"], trials["world"],
                                     weights=trials["comparisons"])  # fmt: skip
    out["read_reached_share"] = float(trials["read_reached"].mean())
    # Each metric's fixed-horizon test at the read against its own null distribution: Var(z) = 1 and
    # P(|z| > z_(1 - a/2)) = a when its standard error is right (a = alpha / 4, Holm's first step for 4 metrics).
    first_step = alpha / 4
    z_crit = float(stats.norm.ppf(1 - first_step / 2))
    out["read_z"] = {
        column.removeprefix("read_z_"): {
            "variance": float(trials[column].var()),
            "variance_se": float(trials[column].var() * math.sqrt(2 / (trials[column].count() - 1))),
            f"share_abs_z_above_{z_crit:.3f}": float((trials[column].abs() > z_crit).mean()),
            "comparisons": int(trials[column].count()),
        }
        for column in sorted(c for c in trials.columns if c.startswith("read_z_"))
    }
    return out


def _rate(values: pd.Series, worlds: pd.Series, weights: pd.Series | None = None) -> dict[str, float]:
    w = pd.Series(1.0, index=values.index) if weights is None else weights.astype(float)
    rate = float((values * w).sum() / w.sum())
    total = float(w.sum())
    binomial = math.sqrt(rate * (1 - rate) / total)
    # Cluster-robust (CR0) standard error of a ratio estimator: per-world residual totals.
    residual = ((values - rate) * w).groupby(worlds).sum()
    clusters = len(residual)
    clustered = math.sqrt(clusters / max(clusters - 1, 1) * float((residual**2).sum())) / total
    se = max(binomial, clustered)
    return {"rate": rate, "se_binomial": binomial, "se_clustered": clustered, "upper_95": rate + 1.645 * se}


def world_trials(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Trials of several worlds as one table, each tagged with its world's position."""
    return pd.concat([f.assign(world=i) for i, f in enumerate(frames)], ignore_index=True)
