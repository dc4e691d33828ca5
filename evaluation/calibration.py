"""Calibration of the experiment statistics against effects planted in the simulator.

Each run simulates a small history, measures every experiment's metrics per user exactly as the warehouse
defines them (``simulated_units``), compares the arms with ``compare_ratios`` / ``compare_means`` /
``cuped_compare``, and records the *true* effect each comparison estimates, computed from the exact click and
conversion probabilities in the truth. Over many seeds this shows how often the 95% intervals cover the truth,
how often an A/A test is significant after Holm, and how much CUPED really removes.

Estimand (docs/decisions.md, "Calibration"): the effect on the treatment arm's own post-exposure impressions
(ctr) or users (conversion): expected clicks (conversion probability) with the experiment's multiplier against
the same with it set to 1, conditional on the simulated users and impressions.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.simulated_units import ExperimentSpec, experiment_specs, unit_metrics
from ml.experiments.cuped import PairedStats, cuped_compare
from ml.experiments.frequentist import Comparison, compare_means
from ml.experiments.multiple import holm
from ml.experiments.ratio import RatioStats, compare_ratios
from ml.experiments.stats import MeanStats
from simulator import SimulationConfig, simulate
from simulator.config import DEFAULT_EXPERIMENTS, ExperimentConfig

METRICS: tuple[str, ...] = ("ctr", "conversion")
#: Per-user columns CUPED is tried on, each with its pre-exposure value as the covariate.
CUPED_METRICS: tuple[str, ...] = ("converted", "clicks", "dwell_seconds")
ALPHA = 0.05
_Z95 = 1.959963984540054  # the normal quantile behind every 95% interval summarised here


#: Separates an experiment's id from the per-seed salt that re-randomizes its split (see calibration_config).
SALT_MARK = "@"
#: Extra A/A experiments (calibration_config(extra_aa=...)) are named with this prefix and a number.
EXTRA_AA_PREFIX = "exp_aa_extra_"
_EXTRA_AA_SURFACES: tuple[tuple[str, ...], ...] = (("feed",), ("home", "feed"), ("home",))


def calibration_config(
    seed: int, users: int = 1_000, days: int = 14, resalt: bool = True, extra_aa: int = 0, **changes: Any
) -> SimulationConfig:
    """A small world for repeated simulations: the demo's behaviour and experiments, Parquet output, no
    delivery faults (they are the ingestion's concern; the metrics here would deduplicate them anyway).

    resalt: give each experiment a per-seed id (``exp_feed_ranker@17``) so every simulation draws a new split.
    Assignment hashes experiment id and user id, and user ids are the same in every seed, so without it all
    seeds share one split; as user ids follow signup order, that fixes which arm the late signups are in and
    turns one split's chance imbalance into a bias repeated in every seed (docs/decisions.md, "Calibration").
    extra_aa: that many more A/A experiments like exp_aa_feed (on varying surfaces), each an independent split
        of the same users: many A/A trials per simulated world for the family-wise error check, at the cost of
        their exposures only (they change no behaviour).
    """
    extras = tuple(
        ExperimentConfig(f"{EXTRA_AA_PREFIX}{i:02d}", variants=("control", "control_copy"), target="none",
                         start_fraction=0.40, surfaces=_EXTRA_AA_SURFACES[i % len(_EXTRA_AA_SURFACES)])
        for i in range(extra_aa)
    )  # fmt: skip
    experiments = DEFAULT_EXPERIMENTS + extras
    if resalt:
        experiments = tuple(replace(e, experiment_id=f"{e.experiment_id}{SALT_MARK}{seed}") for e in experiments)
    return SimulationConfig(
        users=users,
        days=days,
        seed=seed,
        format="parquet",
        duplicate_rate=0.0,
        late_rate=0.0,
        malformed_rate=0.0,
        experiments=experiments,
        **changes,
    )


def base_experiment_id(experiment_id: str) -> str:
    """The experiment's id without a calibration salt."""
    return experiment_id.split(SALT_MARK, 1)[0]


@dataclass(frozen=True)
class Trial:
    """One experiment x metric x treatment arm of one simulation: the estimate and the truth it estimates.

    true_absolute / true_relative are None where the truth tables cannot give them (a ctr experiment moves
    conversions through clicks, an effect the truth does not isolate).
    """

    seed: int
    experiment_id: str
    metric: str
    variant: str
    n_control: int
    n_treatment: int
    control_value: float
    treatment_value: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_p: float
    relative: float
    relative_ci: tuple[float, float]
    relative_p: float
    true_absolute: float | None
    true_relative: float | None

    @property
    def planted(self) -> bool:
        """The truth is known and not zero."""
        return self.true_relative is not None and self.true_relative != 0

    def covers(self, kind: str) -> bool | None:
        """Whether the `kind` ('absolute' or 'relative') interval holds the truth (None: truth unknown)."""
        truth = self.true_absolute if kind == "absolute" else self.true_relative
        low, high = self.absolute_ci if kind == "absolute" else self.relative_ci
        return None if truth is None else bool(low <= truth <= high)


@dataclass(frozen=True)
class CupedTrial:
    """CUPED against the unadjusted difference for one experiment x per-user metric of one simulation."""

    seed: int
    experiment_id: str
    metric: str
    raw: float
    raw_ci: tuple[float, float]
    adjusted: float
    adjusted_ci: tuple[float, float]
    variance_reduction: float  # as cuped_compare reports it
    rho2: float  # squared pre/post correlation within arms (numpy, pooled), the reduction theory predicts
    true_absolute: float | None

    def covers(self) -> bool | None:
        """Whether the CUPED interval holds the truth (None: truth unknown)."""
        if self.true_absolute is None:
            return None
        return bool(self.adjusted_ci[0] <= self.true_absolute <= self.adjusted_ci[1])


@dataclass
class Outcome:
    """Everything measured over one or more simulations."""

    trials: list[Trial] = field(default_factory=list)
    cuped: list[CupedTrial] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.trials.extend(other.trials)
        self.cuped.extend(other.cuped)


def analyse(units: pd.DataFrame, specs: Sequence[ExperimentSpec], seed: int) -> list[Trial]:
    """Every experiment x metric x treatment arm of one simulation against its control (the first variant)."""
    trials = []
    for spec in specs:
        rows = units[units["experiment_id"] == spec.experiment_id]
        control = rows[rows["variant"] == spec.variants[0]]
        for variant in spec.variants[1:]:
            treated = rows[rows["variant"] == variant]
            for metric in METRICS:
                r = _compare(metric, control, treated)
                if r.relative is None or r.relative_ci is None or r.relative_p is None:
                    # Every arm of these worlds has clicks and conversions; a control near 0 means a broken world.
                    raise ValueError(f"seed {seed}, {spec.experiment_id}/{metric}: {r.relative_note}")
                truth_abs, truth_rel = _truth(metric, spec, treated)
                trials.append(
                    Trial(
                        seed=seed,
                        experiment_id=base_experiment_id(spec.experiment_id),
                        metric=metric,
                        variant=variant,
                        n_control=len(control),
                        n_treatment=len(treated),
                        control_value=r.control_value,
                        treatment_value=r.treatment_value,
                        absolute=r.absolute,
                        absolute_ci=r.absolute_ci,
                        absolute_p=r.absolute_p,
                        relative=r.relative,
                        relative_ci=r.relative_ci,
                        relative_p=r.relative_p,
                        true_absolute=truth_abs,
                        true_relative=truth_rel,
                    )
                )
    return trials


def _compare(metric: str, control: pd.DataFrame, treated: pd.DataFrame) -> Comparison:
    if metric == "ctr":
        return compare_ratios(
            ratio_stats(control, "clicks", "impressions"), ratio_stats(treated, "clicks", "impressions")
        )
    return compare_means(mean_stats(control, "converted"), mean_stats(treated, "converted"))


def ratio_stats(units: pd.DataFrame, num: str, den: str) -> RatioStats:
    """Per-unit sums of a ratio metric (units with a zero denominator still count in n)."""
    x, y = units[num].to_numpy(float), units[den].to_numpy(float)
    return RatioStats(
        n=len(units),
        sum_num=float(x.sum()),
        sum_num2=float((x * x).sum()),
        sum_den=float(y.sum()),
        sum_den2=float((y * y).sum()),
        sum_num_den=float((x * y).sum()),
    )


def mean_stats(units: pd.DataFrame, column: str) -> MeanStats:
    values = units[column].to_numpy(float)
    return MeanStats(n=len(values), sum=float(values.sum()), sum_squares=float((values * values).sum()))


def _truth(metric: str, spec: ExperimentSpec, treated: pd.DataFrame) -> tuple[float | None, float | None]:
    """True absolute and relative effect on the treatment arm's own impressions (ctr) or users (conversion)."""
    if not spec.has_effect or (metric == "ctr" and spec.target == "conversion"):
        return 0.0, 0.0  # nothing this experiment changes reaches the metric
    if metric == "conversion" and spec.target == "ctr":
        return None, None  # moves conversions only through clicks: no counterfactual in the truth
    if metric == "ctr":
        with_effect = float(treated["expected_clicks"].sum())
        without = float(treated["expected_clicks_no_ctr_effect"].sum())
        scale = float(treated["impressions"].sum())
    else:
        with_effect = float(treated["p_converted"].sum())
        without = float(treated["p_converted_no_conversion_effect"].sum())
        scale = float(len(treated))
    return (with_effect - without) / scale, with_effect / without - 1


def cuped_trials(units: pd.DataFrame, specs: Sequence[ExperimentSpec], seed: int) -> list[CupedTrial]:
    """CUPED (covariate: the same metric before first exposure) on each experiment's first treatment arm (the
    demo's experiments: the extra A/As are there for the family-wise error count only)."""
    out = []
    for spec in specs:
        if base_experiment_id(spec.experiment_id).startswith(EXTRA_AA_PREFIX):
            continue
        rows = units[units["experiment_id"] == spec.experiment_id]
        control, treated = rows[rows["variant"] == spec.variants[0]], rows[rows["variant"] == spec.variants[1]]
        for metric in CUPED_METRICS:
            adjusted = cuped_compare(paired_stats(control, metric), paired_stats(treated, metric))
            raw = compare_means(mean_stats(control, metric), mean_stats(treated, metric))
            out.append(
                CupedTrial(
                    seed=seed,
                    experiment_id=base_experiment_id(spec.experiment_id),
                    metric=metric,
                    raw=raw.absolute,
                    raw_ci=raw.absolute_ci,
                    adjusted=adjusted.absolute,
                    adjusted_ci=adjusted.absolute_ci,
                    variance_reduction=adjusted.variance_reduction,
                    rho2=within_arm_rho2([control, treated], metric),
                    true_absolute=_cuped_truth(metric, spec, treated),
                )
            )
    return out


def paired_stats(units: pd.DataFrame, column: str) -> PairedStats:
    """Sufficient statistics of a per-user metric and its pre-exposure value (`pre_<column>`)."""
    y, x = units[column].to_numpy(float), units[f"pre_{column}"].to_numpy(float)
    return PairedStats(
        n=len(units),
        sum_x=float(x.sum()),
        sum_x2=float((x * x).sum()),
        sum_y=float(y.sum()),
        sum_y2=float((y * y).sum()),
        sum_xy=float((x * y).sum()),
    )


def within_arm_rho2(arms: Sequence[pd.DataFrame], column: str) -> float:
    """Squared correlation of a metric with its pre-exposure value, each arm centered on its own means."""
    y = np.concatenate([a[column].to_numpy(float) - a[column].mean() for a in arms])
    x = np.concatenate([a[f"pre_{column}"].to_numpy(float) - a[f"pre_{column}"].mean() for a in arms])
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def _cuped_truth(metric: str, spec: ExperimentSpec, treated: pd.DataFrame) -> float | None:
    """True absolute effect on a per-user CUPED metric, where the truth gives it."""
    if not spec.has_effect:
        return 0.0
    if metric == "converted":
        return _truth("conversion", spec, treated)[0]
    if spec.target == "conversion":
        return 0.0  # a conversion nudge changes neither clicks nor dwell
    if metric == "clicks":
        return float((treated["expected_clicks"] - treated["expected_clicks_no_ctr_effect"]).mean())
    return None  # dwell follows clicks; the truth holds no counterfactual dwell


def aa_holm_p(trials: Iterable[Trial], experiment_id: str, kind: str = "absolute") -> float:
    """Smallest Holm-adjusted p-value across the metrics of one experiment in one simulation."""
    ps = [t.absolute_p if kind == "absolute" else t.relative_p for t in trials if t.experiment_id == experiment_id]
    if not ps:
        raise ValueError(f"no trials of experiment {experiment_id!r}")
    return min(holm(ps))


def simulate_and_analyse(config: SimulationConfig, scratch: Path | None = None) -> Outcome:
    """Simulate one history into a temporary folder under `scratch`, analyse it, delete the folder."""
    out = Path(tempfile.mkdtemp(prefix=f"tailor-calibration-{config.seed}-", dir=scratch))
    try:
        simulate(config, out, overwrite=True)
        units, specs = unit_metrics(out), experiment_specs(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return Outcome(analyse(units, specs, config.seed), cuped_trials(units, specs, config.seed))


def run_many(
    seeds: Iterable[int],
    make_config: Callable[[int], SimulationConfig] = calibration_config,
    workers: int = 1,
    scratch: Path | None = None,
) -> Outcome:
    """One simulation per seed, in seed order; `workers` > 1 runs that many processes (then `make_config`
    must be picklable: a module-level function or a functools.partial of one)."""
    configs = [make_config(seed) for seed in seeds]
    total = Outcome()
    if workers <= 1:
        for config in configs:
            total.extend(simulate_and_analyse(config, scratch))
        return total
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for outcome in pool.map(simulate_and_analyse, configs, [scratch] * len(configs)):
            total.extend(outcome)
    return total


def summarize(trials: Sequence[Trial], alpha: float = ALPHA) -> dict[str, Any]:
    """Coverage (with its binomial standard error), interval width and rejection rate per experiment x metric,
    coverage pooled over the planted effects, and the A/A false-positive rate after Holm."""
    by_pair: dict[str, list[Trial]] = {}
    for t in trials:
        by_pair.setdefault(f"{t.experiment_id}/{t.metric}", []).append(t)
    pairs = {name: _pair_summary(ts, alpha) for name, ts in sorted(by_pair.items())}
    planted = [t for t in trials if t.planted]
    pooled = {kind: _coverage([t.covers(kind) for t in planted]) for kind in ("relative", "absolute")}
    return {"pairs": pairs, "planted_pooled": {"trials": len(planted), **pooled}, "aa": _aa_summary(trials, alpha)}


def _pair_summary(ts: Sequence[Trial], alpha: float) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "simulations": len(ts),
        "units_control_mean": _mean([t.n_control for t in ts]),
        "units_treatment_mean": _mean([t.n_treatment for t in ts]),
        "control_value_mean": _mean([t.control_value for t in ts]),
    }
    for kind in ("relative", "absolute"):
        truth = [t.true_relative if kind == "relative" else t.true_absolute for t in ts]
        known = [x for x in truth if x is not None]
        estimates = [t.relative if kind == "relative" else t.absolute for t in ts]
        ci = [t.relative_ci if kind == "relative" else t.absolute_ci for t in ts]
        p = [t.relative_p if kind == "relative" else t.absolute_p for t in ts]
        se = np.array([(hi - lo) / (2 * _Z95) for lo, hi in ci])
        errors = np.array([e - x for e, x in zip(estimates, truth, strict=True) if x is not None])
        entry[kind] = {
            **_coverage([t.covers(kind) for t in ts]),
            # Spread of the estimates around the truth over the standard error the interval used: 1 when the
            # standard errors are right, above 1 when they are too small.
            "error_sd_over_se": float(errors.std(ddof=1) / np.sqrt(np.mean(se**2))) if len(errors) > 1 else None,
            "true_effect_mean": _mean(known) if known else None,
            "true_effect_sd": float(np.std(known)) if known else None,
            "estimate_mean": _mean(estimates),
            "estimate_sd": float(np.std(estimates)),
            "ci_width_mean": _mean([hi - lo for lo, hi in ci]),
            "rejection_rate": _mean([x < alpha for x in p]),
        }
    return entry


def _coverage(covered: Sequence[bool | None]) -> dict[str, float | int | None]:
    known = [c for c in covered if c is not None]
    if not known:
        return {"coverage": None, "coverage_se": None, "covered": None}
    p = _mean(known)
    return {"coverage": p, "coverage_se": float(np.sqrt(p * (1 - p) / len(known))), "covered": int(sum(known))}


def _aa_summary(trials: Sequence[Trial], alpha: float) -> dict[str, Any]:
    """Per A/A experiment (every metric's truth is zero): share of simulations with a significant metric."""
    out = {}
    for experiment in sorted({t.experiment_id for t in trials}):
        ts = [t for t in trials if t.experiment_id == experiment]
        if not all(t.true_relative == 0 and t.true_absolute == 0 for t in ts):
            continue
        per_seed = [[t for t in ts if t.seed == s] for s in sorted({t.seed for t in ts})]
        out[experiment] = {
            "simulations": len(per_seed),
            "metrics": sorted({t.metric for t in ts}),
            "any_significant_uncorrected": _mean([min(t.absolute_p for t in g) < alpha for g in per_seed]),
            "significant_after_holm": _mean([aa_holm_p(g, experiment) < alpha for g in per_seed]),
            "significant_after_holm_relative": _mean([aa_holm_p(g, experiment, "relative") < alpha for g in per_seed]),
        }
    return out


def summarize_cuped(cuped: Sequence[CupedTrial]) -> dict[str, Any]:
    """Per experiment x metric: predicted (rho^2), reported and realised variance reduction of CUPED.

    The realised one compares the spread of the adjusted and raw estimates around the truth across simulations,
    so it does not rely on the formula it checks.
    """
    groups: dict[str, list[CupedTrial]] = {}
    for c in cuped:
        groups.setdefault(f"{c.experiment_id}/{c.metric}", []).append(c)
    out = {}
    for name, cs in sorted(groups.items()):
        entry: dict[str, Any] = {
            "simulations": len(cs),
            "rho2_mean": _mean([c.rho2 for c in cs]),
            "reported_reduction_mean": _mean([c.variance_reduction for c in cs]),
        }
        if all(c.true_absolute is not None for c in cs):
            entry["realised_reduction"] = realised_reduction(cs)
            entry["adjusted_coverage"] = _coverage([c.covers() for c in cs])["coverage"]
        out[name] = entry
    return out


def realised_reduction(cs: Sequence[CupedTrial]) -> float:
    """1 - Var(adjusted - truth) / Var(raw - truth) across simulations (needs the truth of each)."""
    truth = np.array([c.true_absolute for c in cs], dtype=float)
    raw = np.array([c.raw for c in cs]) - truth
    adjusted = np.array([c.adjusted for c in cs]) - truth
    return float(1 - adjusted.var(ddof=1) / raw.var(ddof=1))


def _mean(values: Sequence[float | bool]) -> float:
    return float(np.mean(np.asarray(values, dtype=float)))
