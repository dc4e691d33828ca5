"""`tailor experiments`: read experiment results, analyse a summary CSV, plan a test.

The JSON shape (--json) is a stable interface, documented in docs/experiments.md:
{"schema_version": 1, "alpha": 0.05, "experiments": [{experiment_id, srm_p, srm_mismatch, units}],
 "results": [{one object per experiment x metric x variant, keys = ml.experiments.analysis.RESULT_COLUMNS}]}
"""

from __future__ import annotations

import math
import textwrap
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from cli.common import console, emit_json, existing_home, fail, json_requested, load_settings

if TYPE_CHECKING:
    import pandas as pd

# The statistics stack (pandas, scipy, statsmodels) is imported inside the commands: every other `tailor`
# command would otherwise pay its import time.

SCHEMA_VERSION = 1
#: A width no terminal has: a table measured against it gives the width it would take unwrapped.
UNBOUNDED = 100_000
# Wide enough for the results table when output goes to a file or a pipe (rich assumes 80 columns there).
out = console()

#: A plan longer than this is said to be impractical: over about two months users' identifiers churn and the audience
#: changes under the test (Kohavi, Tang and Xu, "Trustworthy Online Controlled Experiments", 2020, on cookie churn
#: and long-running tests).
LONG_TEST_DAYS = 56


@click.group(invoke_without_command=True)
@click.option("--experiment", "experiment_id", default=None, help="Show one experiment only.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (see docs/experiments.md).")
@click.pass_context
def experiments(ctx: click.Context, experiment_id: str | None, as_json: bool) -> None:
    """Experiment results of the last run: one row per experiment x metric x variant."""
    if ctx.invoked_subcommand is not None:
        return
    from ml.experiments.results import read_results

    try:
        results = read_results(existing_home().marts_dir)
    except FileNotFoundError as error:
        fail(str(error))
    if experiment_id is not None:
        known = sorted(results["experiment_id"].unique())
        if experiment_id not in known:
            fail(f"no experiment {experiment_id!r} in the results; known: {', '.join(known) or 'none'}")
        results = results[results["experiment_id"] == experiment_id]
    _show(results, as_json)


@experiments.command("analyze")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--no-cuped", is_flag=True, help="Ignore covariate columns.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (see docs/experiments.md).")
def analyze_csv(file: Path, alpha: float, no_cuped: bool, as_json: bool) -> None:
    """Analyse summary statistics from FILE.csv (one row per experiment x metric x variant).

    Required columns: experiment, metric, variant, n, sum, sum_squares. Optional: ratio columns
    (denominator_sum, denominator_sum_squares, main_denominator_sum_product), CUPED columns (covariate_sum,
    covariate_sum_squares, main_covariate_sum_product), is_control, weight, metric_kind, metric_role,
    higher_is_better, non_inferiority_margin, planned_units_per_variant. See docs/experiments.md.
    """
    from ml.experiments.analysis import analyze
    from ml.experiments.summary_csv import SummaryFileError, read_summary_csv

    as_json = as_json or json_requested()  # `tailor experiments --json analyze ...` too

    try:
        stats, variants = read_summary_csv(file)
        results = analyze(stats, variants, alpha=alpha, use_cuped=not no_cuped)
    except (SummaryFileError, ValueError) as error:
        fail(str(error))
    _show(results, as_json, alpha)


@experiments.command()
@click.option("--baseline", type=float, required=True, help="Current rate of the metric, e.g. 0.05.")
@click.option("--mde", type=float, required=True, help="Smallest effect worth detecting (absolute unless --relative).")
@click.option("--relative", is_flag=True, help="Read --mde as relative to the baseline (0.1 = +10%).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--power", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8, show_default=True)
@click.option("--variants", type=click.IntRange(min=2), default=2, show_default=True, help="Arms, control included.")
@click.option("--metrics", type=click.IntRange(min=1), default=1, show_default=True,
              help="Non-guardrail metrics the experiment is decided on (each x treatment variant is one comparison "
                   "in the Holm family).")  # fmt: skip
@click.option("--share", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Share of users the experiment may reach.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    baseline: float,
    mde: float,
    relative: bool,
    alpha: float,
    power: float,
    variants: int,
    metrics: int,
    share: float,
    as_json: bool,
) -> None:
    """Units per variant for a conversion-rate test, and days needed at the current traffic.

    Sized for the decision `analyze` takes at the planned size: the fixed-horizon read with the alpha the rule
    keeps for it, Holm-corrected across (variants - 1) x metrics comparisons, each sized at the Bonferroni level
    so every comparison keeps at least --power (docs/experiments.md, "Planning").
    """
    import pandas as pd

    from ml.experiments.decision import alpha_budget
    from ml.experiments.power import sample_size_per_variant
    from ml.experiments.traffic import days_needed, rate_text

    as_json = as_json or json_requested()  # `tailor experiments --json plan ...` too
    comparisons = (variants - 1) * metrics
    budget = alpha_budget(alpha, planned=True)
    try:
        per_variant = sample_size_per_variant(
            baseline, mde, relative=relative, alpha=budget.final, power=power, comparisons=comparisons
        )
    except ValueError as error:
        fail(str(error))
    total = per_variant * variants
    plan_out: dict[str, Any] = {
        "baseline": baseline,
        "mde": mde,
        "relative": relative,
        "target": baseline * (1 + mde) if relative else baseline + mde,
        "alpha": alpha,
        "power": power,
        "variants": variants,
        "metrics": metrics,
        "comparisons": comparisons,
        "alpha_interim": budget.interim,
        "alpha_final_read": budget.final,
        "alpha_per_comparison": budget.final / comparisons,
        "units_per_variant": per_variant,
        "units_total": total,
        "days_needed": None,
        "longer_than_advised": None,
        "traffic": None,
    }
    activity_path = load_settings().marts_dir / "fct_daily_user_engagement.parquet"
    activity = pd.read_parquet(activity_path, columns=["user_id", "activity_date"]) if activity_path.exists() else None
    if activity is not None and not activity.empty:  # empty: a run that accepted no events (no traffic yet either)
        estimate = days_needed(activity, total, share=share)
        plan_out["days_needed"] = estimate.days
        plan_out["longer_than_advised"] = estimate.days is not None and estimate.days > LONG_TEST_DAYS
        plan_out["traffic"] = {
            "window_days": estimate.window_days,
            # Three decimals: a small site's 0.143 new users a day read 0.1 (a re-check trial); the days use the rest.
            "daily_active_users": round(estimate.daily_active_users, 3),
            "new_users_per_day": round(estimate.new_users_per_day, 3),
            "extrapolated": estimate.extrapolated,
            "share": share,
        }
    if as_json:
        emit_json(plan_out)
        return
    # Readable counts carry thousands separators (12,345 days), as the units do; the JSON above keeps numbers.
    effect = f"{mde:+.1%} relative" if relative else f"{mde:+.4g} absolute"
    out.print(f"Detect {effect} on a baseline of {baseline:.4g} (target {plan_out['target']:.4g}) with "
              f"alpha {alpha:g} (two-sided) and power {power:.0%}:")  # fmt: skip
    out.print(f"  sized for the read at the planned size: alpha {budget.final:g} of {alpha:g} (the rest, "
              f"{budget.interim:g}, is for the always-valid daily looks before it), Holm across {comparisons:,} "
              f"comparison{'s' if comparisons != 1 else ''} ({variants - 1:,} treatment x {metrics:,} metric), "
              f"{budget.final / comparisons:.4g} each at worst")  # fmt: skip
    out.print(f"  [bold]{per_variant:,}[/bold] units per variant, {total:,} in total over {variants:,} variants")
    traffic = plan_out["traffic"]
    if traffic is None:
        out.print("  days needed: unknown (no traffic yet; run `tailor run` to estimate from recent activity)")
    elif estimate.days is None:
        out.print("  days needed: never at the current traffic (no new users arrive)")
    else:
        how = "extrapolated" if estimate.extrapolated else "replaying"
        plural = "" if estimate.days == 1 else "s"
        out.print(f"  [bold]{estimate.days:,}[/bold] day{plural} at the current traffic ({how} the last "
                  f"{traffic['window_days']:,} days: {rate_text(estimate.daily_active_users)} daily active users, "
                  f"{rate_text(estimate.new_users_per_day)} new per day, share {share:g})")  # fmt: skip
        if estimate.days > LONG_TEST_DAYS:
            out.print(f"  longer than a test should run (over {LONG_TEST_DAYS // 7} weeks, users churn and the "
                      "audience drifts under it): plan for a larger effect (--mde), fewer variants or metrics, or "
                      "more of the traffic (--share)")  # fmt: skip


def results_json(results: pd.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """The documented JSON shape of a results table."""
    from ml.experiments.analysis import RESULT_COLUMNS

    records = [
        {column: _clean(row.get(column)) for column in RESULT_COLUMNS}
        for row in results.reindex(columns=RESULT_COLUMNS).to_dict("records")
    ]
    summary = []
    for experiment_id, rows in results.groupby("experiment_id", sort=True):
        summary.append(
            {
                "experiment_id": experiment_id,
                "srm_p": _clean(rows["srm_p"].iloc[0]),
                "srm_mismatch": bool(rows["srm_mismatch"].any()),
                "units": {str(v): int(n) for v, n in rows.groupby("variant")["units"].max().items()},
            }
        )
    return {"schema_version": SCHEMA_VERSION, "alpha": alpha, "experiments": summary, "results": records}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, date):  # decided_on (datetime is a date too)
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def _show(results: pd.DataFrame, as_json: bool, alpha: float = 0.05) -> None:
    import pandas as pd

    from ml.experiments.results import cuped_metrics

    if as_json:
        emit_json(results_json(results, alpha))
        return
    if results.empty:
        out.print("No experiments yet: exposures appear after `tailor run` on events with exposure rows.")
        return
    for experiment_id, rows in results.groupby("experiment_id", sort=True):
        srm_p = rows["srm_p"].iloc[0]
        mismatch = bool(rows["srm_mismatch"].any())
        units = ", ".join(f"{v} {int(n):,}" for v, n in rows.groupby("variant", sort=False)["units"].max().items())
        srm = "n/a" if pd.isna(srm_p) else f"p = {srm_p:.3g}"
        if out.soft_wrap or len(f"{experiment_id}  units: {units}  SRM {srm}") <= out.width:
            out.print(f"\n[bold]{experiment_id}[/bold]  units: {units}  SRM {srm}")
        else:  # too wide for the terminal: the id, then the counts wrapped under it (a trial saw "0.935" at column 0)
            out.print(f"\n[bold]{experiment_id}[/bold]")
            _note(f"units: {units}  SRM {srm}")
        if mismatch:
            out.print("[bold red]SAMPLE RATIO MISMATCH: the split differs from the configured weights; "
                      "do not trust these numbers until assignment and logging are fixed.[/bold red]")  # fmt: skip
        ci = f"lift {1 - alpha:.0%} CI"
        cells: list[dict[str, str]] = []
        notes: list[str] = []
        for r in rows.itertuples():
            if r.is_control:
                cells.append({"metric": str(r.metric), "variant": f"{r.variant} (control)", "value": _fmt(r.value)})
                continue
            for text in (r.relative_note, r.note, _tests_disagree(r, alpha)):
                if not _missing(text):
                    notes.append(f"{r.metric!s} / {r.variant!s}: {text!s}")
            cells.append(
                {
                    "metric": str(r.metric),
                    "variant": str(r.variant),
                    "value": _fmt(r.value),
                    "effect": _fmt(r.absolute_effect, "+.4g"),
                    "lift": _pct(r.relative_lift),
                    ci: _interval(r.relative_ci_low, r.relative_ci_high),
                    "effect p (Holm)": _fmt(r.p_value_holm, ".3f"),
                    "decision interval": _governing(
                        r.decision_ci_low, r.decision_ci_high, r.decision_basis, r.decision_alpha
                    ),
                    "P(win)": _pct(r.chance_to_win, signed=False),
                    "decision": str(r.decision)
                    + (f" on {_day(r.decided_on)}" if _frozen(getattr(r, "decided_on", None), r.decision) else "")
                    + (" (novelty: effect fading)" if r.novelty_fading is True else ""),
                }
            )
        whole = _table(["metric", "variant", "value", "effect", "lift", ci, "effect p (Holm)", "decision interval",
                        "P(win)", "decision"], cells)  # fmt: skip
        estimates = _table(["metric", "variant", "value", "effect", "lift", ci, "P(win)"], cells)
        treated = [row for row in cells if "decision" in row]
        decides = _table(["metric", "variant", "effect p (Holm)", "decision interval", "decision"], treated)
        if _fits(whole):
            out.print(whole)
        elif _fits(estimates) and _fits(decides):
            # Too wide for the terminal: the estimates, then what decides. In one table at 120 columns each row
            # took four lines and names broke mid-word ("control_co / py", "no_detecta / ble_effect": a trial).
            out.print(estimates)
            out.print(decides)
        else:
            # Narrower still (80 columns): one block per comparison, a field a line; tables folded every name and
            # number there ("click_throug / h_rate": a trial).
            _records(cells)
        for line in dict.fromkeys(notes):
            _note(f"note: {line}")
        adjusted = cuped_metrics(rows)
        if adjusted:  # a trial read control 837.3, treatment 820.4 and effect +16.73 as a contradiction
            _note(f"CUPED ({', '.join(adjusted)}): value is each variant's raw metric; effect and lift are "
                  "adjusted for the pre-period covariate, so they can differ from the values' difference, even in "
                  "sign (docs/experiments.md, CUPED)")  # fmt: skip
        decided = rows["decided_on"] if "decided_on" in rows else [None] * len(rows)
        if any(_frozen(d, label) for d, label in zip(decided, rows["decision"], strict=True)):
            _note("decided on DAY: the label was taken that day (an interim always-valid call or the planned read) "
                  "with the decision interval read then, and stands; value, effect and lift are today's estimates "
                  "and may have moved since (docs/experiments.md, Decisions, rule 4)")  # fmt: skip
        if (rows["decision"] == "keep_running").any():
            _note("keep_running: before the planned size (or without one) only the always-valid interval, "
                  "corrected across the experiment's comparisons, may decide; the one fixed-horizon read comes at "
                  "planned_units_per_variant (docs/experiments.md, Decisions)")  # fmt: skip


def _note(text: str) -> None:
    """A note under an experiment's comparisons, indented by 2. Written to a pipe or a file it is one whole line; in
    a terminal it wraps at spaces with its continuation lines indented by 4, so a note reads as one block under the
    comparisons (Rich's own wrapping restarts each line at column 0: a trial at 80 columns)."""
    if out.soft_wrap:
        out.print("  " + text, highlight=False, markup=False)
        return
    for line in textwrap.wrap(text, width=max(out.width, 20), initial_indent="  ", subsequent_indent="    "):
        out.print(line, highlight=False, markup=False)


def _fits(table: Table) -> bool:
    """Whether ``table`` prints at its natural width (no cell wrapped) in the terminal."""
    return out.measure(table, options=out.options.update_width(UNBOUNDED)).maximum <= out.width


def _records(cells: list[dict[str, str]]) -> None:
    """``cells`` (what `_table` would show) as a block per metric and variant: the control's value, then each
    treatment's fields one a line, so nothing wraps in an 80-column terminal."""
    for row in cells:
        out.print(
            f"  [bold]{row['metric']}[/bold] / {row['variant']}" + (": " + row["value"] if "effect" not in row else ""),
            highlight=False,
        )
        if "effect" not in row:
            continue
        for name, text in row.items():
            if name not in ("metric", "variant") and text:
                out.print(f"    {name + ':':<19}{text}", highlight=False)


def _table(columns: list[str], rows: list[dict[str, str]]) -> Table:
    """``rows`` (column -> text; a missing cell is blank) as a table of ``columns``: names and labels left, numbers
    right. Cells wrap at spaces; a word longer than its column (a terminal too narrow for the table) is folded
    across lines, never cut with "…"."""
    table = Table(show_edge=False)
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("metric", "variant", "decision") else "right", overflow="fold"
        )
    for row in rows:
        table.add_row(*(row.get(column, "") for column in columns))
    return table


def _frozen(decided_on: Any, decision: Any) -> bool:
    """A decision taken on an earlier look (it stands; the estimates beside it are today's)."""
    import pandas as pd

    taken = decided_on is not None and not pd.isna(decided_on)
    return taken and decision in ("better", "worse", "no_detectable_effect")


def _day(value: Any) -> str:
    return str(value)[:10]  # a date, datetime or Timestamp: its ISO day


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, spec: str = ".4g") -> str:
    return "" if _missing(value) else format(float(value), spec)


def _pct(value: Any, signed: bool = True) -> str:
    return "" if _missing(value) else format(float(value), "+.1%" if signed else ".0%")


def _tests_disagree(row: Any, alpha: float) -> str | None:
    """A note when the lift's interval and the effect's p-value read differently (a trial saw p 0.036 beside a
    lift interval [-1.9%, +61.9%]): they are two tests, of the difference and of the ratio (delta method)."""
    low, high, p = row.relative_ci_low, row.relative_ci_high, row.absolute_p
    if _missing(low) or _missing(p):
        return None
    if (float(p) < alpha) == (float(low) > 0 or float(high) < 0):
        return None
    return (
        f"the effect's p-value ({float(p):.3f} before Holm) and the lift's interval disagree at {alpha:g}: they test "
        "the difference and the ratio (delta method), which differ near the threshold; neither decides, the "
        "decision interval does"
    )


def _interval(low: Any, high: Any) -> str:
    return "" if _missing(low) else f"[{float(low):+.1%}, {float(high):+.1%}]"


def _governing(low: Any, high: Any, basis: Any, level: Any) -> str:
    """The interval the decision reads, its basis and confidence (absolute scale; relative for guardrails)."""
    if _missing(low) or _missing(basis):
        return ""
    short = {"sequential": "always-valid", "fixed_horizon": "fixed", "non_inferiority": "lift"}.get(str(basis), "")
    scale = "{:+.1%}" if basis == "non_inferiority" else "{:+.4g}"
    return f"[{scale.format(float(low))}, {scale.format(float(high))}] {short} {1 - float(level):.2%}"
