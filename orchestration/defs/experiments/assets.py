"""Experiment results: the statistics of ml.experiments over the sufficient-statistics marts, after every run."""

import dagster as dg
import pandas as pd

from ml.experiments.results import DAILY_RESULTS, compute_daily_results, compute_results, read_results, write_results
from orchestration.lib.signals import stop_if_signalled
from tailor.settings import get_settings

RESULTS_KEY = dg.AssetKey(["experiments", "experiment_results"])


@dg.asset(
    key=RESULTS_KEY,
    deps=[
        dg.AssetKey(["marts", "fct_experiment_stats"]),
        dg.AssetKey(["marts", "dim_experiments"]),
        dg.AssetKey(["marts", "fct_experiment_novelty_stats"]),
        dg.AssetKey(["marts", "fct_experiment_daily_stats"]),
    ],
    group_name="experiments",
    kinds={"python", "parquet"},
)
def experiment_results(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One row per experiment x metric x variant: units, value, absolute and relative effect with CIs and
    p-values (CUPED-adjusted where a pre-period exists), Holm-corrected p, always-valid sequential CI, chance to
    win, SRM p-value, novelty trend and a decision label with the interval it was read from. The decisions are
    those of the daily looks (always-valid before the planned size, one Holm-corrected fixed-horizon read at it,
    final once taken), so they equal the last day of experiment_daily_results. Read it with `tailor
    experiments`; columns and the rule in docs/experiments.md."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    settings = get_settings()
    results = compute_results(settings.marts_dir)
    path = write_results(results, settings.marts_dir)
    treated = results[~results["is_control"].astype(bool)]
    decisions = treated["decision"].value_counts().to_dict()
    context.log.info(f"experiment results: {len(results)} rows, decisions {decisions}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "rows": dg.MetadataValue.int(len(results)),
            "experiments": dg.MetadataValue.int(int(results["experiment_id"].nunique())),
            "decisions": dg.MetadataValue.json({str(k): int(v) for k, v in decisions.items()}),
            "preview": dg.MetadataValue.md(_preview(treated)),
        }
    )


@dg.asset(
    key=["experiments", "experiment_daily_results"],
    deps=[dg.AssetKey(["marts", "fct_experiment_daily_stats"]), dg.AssetKey(["marts", "dim_experiments"])],
    group_name="experiments",
    kinds={"python", "parquet"},
)
def experiment_daily_results() -> dg.MaterializeResult:
    """The results as they stood at the end of each day since the start, with the decision the rule allowed
    that day: before the planned size only the always-valid evidence, Holm-corrected across the experiment's
    comparisons, may call a winner; on the first day at the planned size one fixed-horizon read decides; a
    decision once taken stays (decided_on). Same columns as experiment_results plus as_of_date."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    settings = get_settings()
    daily = compute_daily_results(settings.marts_dir)
    path = write_results(daily, settings.marts_dir, DAILY_RESULTS)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "rows": dg.MetadataValue.int(len(daily))}
    )


@dg.asset_check(asset=RESULTS_KEY, name="no_sample_ratio_mismatch")
def srm_check() -> dg.AssetCheckResult:
    """Units split across variants as configured (chi-square, flagged at p < 0.001). A mismatch means
    assignment or logging is broken and that experiment's numbers cannot be trusted."""
    stop_if_signalled()  # a signal an earlier step swallowed stops the run here
    results = read_results(get_settings().marts_dir)
    per_experiment = results.groupby("experiment_id").agg(srm_p=("srm_p", "first"), mismatch=("srm_mismatch", "any"))
    flagged = sorted(str(e) for e in per_experiment.index[per_experiment["mismatch"]])
    return dg.AssetCheckResult(
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "srm_p": dg.MetadataValue.json({str(k): float(v) for k, v in per_experiment["srm_p"].dropna().items()}),
            "flagged": dg.MetadataValue.json(flagged),
        },
        description="no sample ratio mismatch" if not flagged else f"sample ratio mismatch in {', '.join(flagged)}",
    )


def _preview(treated: pd.DataFrame) -> str:
    """A markdown table of the treated rows for the Dagster UI (no extra dependency for markdown)."""
    if treated.empty:
        return "(no experiments)"
    lines = ["| experiment | metric | variant | lift | 95% CI | decision |", "|---|---|---|---|---|---|"]
    for r in treated.to_dict("records"):
        lift = "n/a" if r["relative_lift"] is None or pd.isna(r["relative_lift"]) else f"{r['relative_lift']:+.2%}"
        low, high = r["relative_ci_low"], r["relative_ci_high"]
        ci = "" if low is None or pd.isna(low) else f"[{low:+.2%}, {high:+.2%}]"
        lines.append(f"| {r['experiment_id']} | {r['metric']} | {r['variant']} | {lift} | {ci} | {r['decision']} |")
    return "\n".join(lines)
