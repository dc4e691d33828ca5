"""`tailor experiments analyze` and `plan` on the issue's inputs, through the command (click's runner, no
subprocess): what a user reads on the console and in --json."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cli.experiments import experiments, results_json
from ml.experiments.analysis import analyze, analyze_daily
from tailor.settings import Settings

pytestmark = pytest.mark.unit

TINY = (
    "experiment,metric,variant,n,sum,sum_squares,planned_units_per_variant\n"
    "exp_tiny,conversion,control,20,1,1,1000\n"
    "exp_tiny,conversion,treatment,20,0,0,1000\n"
)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(experiments, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_analyze_prints_why_the_relative_lift_is_missing_and_what_decides(tmp_path: Path) -> None:
    summary = tmp_path / "tiny.csv"
    summary.write_text(TINY)
    code, out, _ = _run("analyze", str(summary))
    assert code == 0
    assert "keep_running" in out and "worse" not in out
    assert "always-valid" in out  # the decision interval's basis
    assert "relative lift's interval would be unbounded (Fieller)" in out
    assert "pooled (null) variance" in out
    code, out, _ = _run("analyze", str(summary), "--json")
    treated = next(r for r in json.loads(out)["results"] if not r["is_control"])
    assert treated["relative_lift"] is None and treated["relative_note"]
    assert treated["absolute_p"] == pytest.approx(0.311, abs=0.001)
    assert treated["decision"] == "keep_running" and treated["decision_basis"] == "sequential"


def test_analyze_says_when_the_effect_p_value_and_the_lift_interval_read_differently(tmp_path: Path) -> None:
    """Found by a trial: 100/1000 against 130/1000 printed p (Holm) 0.036 beside a 95% CI of [-1.9%, +61.9%]."""
    summary = tmp_path / "proportions.csv"
    summary.write_text(
        "experiment,metric,variant,n,sum,sum_squares\ne1,ctr,control,1000,100,100\ne1,ctr,treatment,1000,130,130\n"
    )
    code, out, _ = _run("analyze", str(summary))
    assert code == 0 and "lift 95% CI" in out and "effect p (Holm)" in out
    assert "[-1.9%, +61.9%]" in out and "0.036" in out
    assert "the effect's p-value (0.036 before Holm) and the lift's interval disagree at 0.05" in out
    # Where they agree, no note.
    summary.write_text(
        "experiment,metric,variant,n,sum,sum_squares\ne1,ctr,control,1000,100,100\ne1,ctr,treatment,1000,180,180\n"
    )
    assert "disagree" not in _run("analyze", str(summary))[1]


def test_analyze_refuses_a_summary_with_a_missing_control_row(tmp_path: Path) -> None:
    summary = tmp_path / "holes.csv"
    summary.write_text(TINY + "exp_tiny,revenue,treatment,20,40,100,1000\n")
    code, _, err = _run("analyze", str(summary))
    assert code == 1
    assert "experiment 'exp_tiny', metric 'revenue' has no row for the control variant 'control'" in err


def test_analyze_refuses_sums_no_data_could_have_naming_the_row_and_the_rule(tmp_path: Path) -> None:
    """Found by a trial: n=1000, sum=5000, sum_squares=1000 (a negative variance) was analysed, noted 'an arm has no
    variance'. Any n numbers have sum x^2 >= (sum x)^2 / n, as the ratio's and the covariate's squares must too."""
    summary = tmp_path / "impossible.csv"
    summary.write_text(
        TINY.replace("exp_tiny,conversion,treatment,20,0,0,1000", "exp_tiny,conversion,treatment,1000,5000,1000,1000")
    )
    code, out, err = _run("analyze", str(summary))
    assert code == 1 and out == ""
    assert err == (
        f"error: {summary}, line 3, column 'sum_squares': 1000 is less than sum^2 / n = 5000^2 / 1000 = 25000 "
        "(experiment 'exp_tiny', metric 'conversion', variant 'treatment'); a sum of squares must be at least "
        "sum^2 / n, else the variance would be negative: check that sum_squares sums each unit's squared value "
        "(not the square of a mean)\n"
    )
    header = (
        "experiment,metric,variant,n,sum,sum_squares,covariate_sum,covariate_sum_squares,main_covariate_sum_product\n"
    )
    summary.write_text(header + "e,m,control,10,5,5,4,1,2\ne,m,treatment,10,5,5,4,2,2\n")
    code, _, err = _run("analyze", str(summary))
    assert code == 1 and "line 2, column 'covariate_sum_squares': 1 is less than covariate_sum^2 / n" in err


def test_analyze_refuses_a_proportion_or_a_ratio_denominator_no_counts_could_give(tmp_path: Path) -> None:
    """Found by a trial: a negative click count was analysed. A mean may be negative (net revenue), so only what the
    row declares is checked: a proportion counts units with a success (0 <= sum <= n, and each unit is 0 or 1, so
    sum_squares = sum); a ratio's denominator counts something and must add up to more than 0."""
    summary = tmp_path / "counts.csv"
    header = "experiment,metric,variant,metric_kind,n,sum,sum_squares\n"
    summary.write_text(header + "e1,ctr,control,proportion,1000,-100,100\ne1,ctr,treatment,proportion,1000,130,130\n")
    code, out, err = _run("analyze", str(summary))
    assert code == 1 and out == ""
    assert err == (
        f"error: {summary}, line 2, column 'sum': -100 successes of 1000 units (experiment 'e1', metric 'ctr', "
        "variant 'control'); a proportion's sum counts the units with a success, between 0 and n\n"
    )
    summary.write_text(header + "e1,ctr,control,proportion,1000,100,100\ne1,ctr,treatment,proportion,100,130,130\n")
    assert "line 3, column 'sum': 130 successes of 100 units" in _run("analyze", str(summary))[2]
    summary.write_text(header + "e1,ctr,control,proportion,1000,100,100\ne1,ctr,treatment,proportion,1000,130,500\n")
    code, _, err = _run("analyze", str(summary))
    assert code == 1 and "line 3, column 'sum_squares': 500, but sum is 130" in err and "each unit is 0 or 1" in err
    # The same sums as a mean: a negative total is a mean's right.
    summary.write_text(header + "e1,net,control,mean,1000,-100,100\ne1,net,treatment,mean,1000,130,130\n")
    assert _run("analyze", str(summary))[0] == 0
    ratio = (
        "experiment,metric,variant,n,sum,sum_squares,denominator_sum,denominator_sum_squares,"
        "main_denominator_sum_product\n"
    )
    summary.write_text(ratio + "e1,ctr,control,100,10,10,0,0,0\ne1,ctr,treatment,100,12,12,300,1000,40\n")
    code, _, err = _run("analyze", str(summary))
    assert code == 1 and "line 2, column 'denominator_sum': 0 (experiment 'e1', metric 'ctr', variant 'control')" in err
    assert "must add up to more than 0" in err


def test_analyze_reads_a_zero_variance_summed_in_floating_point_as_zero(tmp_path: Path) -> None:
    """Five units of 0.3 each: summed in floating point, sum_squares (0.44999999999999996) falls a rounding error
    below sum^2 / n (0.45); a relative slack of 1e-9 reads it as what it is, no variance, not as impossible."""
    values = [0.3] * 5
    total, squares = sum(values), sum(v * v for v in values)
    assert squares < total**2 / 5  # the rounding the slack is for
    summary = tmp_path / "flat.csv"
    summary.write_text(
        f"experiment,metric,variant,n,sum,sum_squares\ne,m,control,10,{total!r},{squares!r}\ne,m,treatment,10,2,1\n"
    )
    code, _, err = _run("analyze", str(summary))
    assert code == 0, err


def test_plan_for_four_variants_sizes_for_holm_and_says_so() -> None:
    code, out, _ = _run("plan", "--baseline", "0.1", "--mde", "0.02", "--variants", "4", "--json")
    plan = json.loads(out)
    assert code == 0
    assert plan["comparisons"] == 3 and plan["alpha_final_read"] == pytest.approx(0.04)
    assert plan["alpha_per_comparison"] == pytest.approx(0.04 / 3)
    assert plan["units_per_variant"] == 5374  # 81% power through analyze: tests/unit/test_experiment_edges.py
    code, out, _ = _run("plan", "--baseline", "0.1", "--mde", "0.02", "--variants", "3", "--metrics", "4")
    assert code == 0 and "Holm across 8 comparisons (2 treatment x 4 metric)" in out


def test_json_carries_the_day_a_decision_was_taken() -> None:
    """decided_on is an ISO date in --json (the daily looks' as_of_date)."""
    rng = np.random.default_rng(1)
    rows = []
    for day in range(6):
        for variant, scale in (("control", 1.0), ("treatment", 3.0)):
            values = rng.exponential(scale, 100 * (day + 1))
            rows.append({"as_of_date": pd.Timestamp("2026-03-01").date() + pd.Timedelta(days=day).to_pytimedelta(),
                         "experiment_id": "e", "metric": "m", "variant": variant, "n": len(values),
                         "sum": values.sum(), "sum_squares": (values**2).sum()})  # fmt: skip
    daily = pd.DataFrame(rows)
    variants = pd.DataFrame({"experiment_id": "e", "variant": ["control", "treatment"], "is_control": [True, False],
                             "weight": 0.5, "planned_units_per_variant": 10_000})  # fmt: skip
    last = daily[daily["as_of_date"] == daily["as_of_date"].max()].drop(columns="as_of_date")
    results = analyze(last, variants, history=daily)
    treated = next(r for r in json.loads(json.dumps(results_json(results)))["results"] if not r["is_control"])
    assert treated["decision"] == "better" and treated["decision_basis"] == "sequential"
    by_day = analyze_daily(daily, variants)
    first = by_day.loc[by_day["decision"] == "better", "as_of_date"].min()
    assert treated["decided_on"] == first.isoformat() == "2026-03-02"  # a tripled mean, called on the second look


def _activity(settings: Settings, rows: list[tuple[str, str]]) -> None:
    settings.marts_dir.mkdir(parents=True)
    frame = pd.DataFrame(rows, columns=["user_id", "activity_date"]).astype({"activity_date": "datetime64[ns]"})
    frame.to_parquet(settings.marts_dir / "fct_daily_user_engagement.parquet")


def test_plan_prints_large_day_counts_with_separators_and_json_keeps_numbers(settings: Settings) -> None:
    # One new user a day for 28 days, each back every day after: 28 units in the window, then 1 more a day.
    _activity(settings, [(f"u{first}", f"2026-01-{day:02d}") for first in range(1, 29) for day in range(first, 29)])
    args = ("plan", "--baseline", "0.05", "--mde", "0.002")
    code, out, _ = _run(*args, "--json")
    plan = json.loads(out)
    assert code == 0 and plan["units_total"] > 100_000
    assert plan["days_needed"] == plan["units_total"]  # 28 days for the first 28 units, then one unit a day
    assert isinstance(plan["days_needed"], int) and plan["traffic"]["daily_active_users"] == 14.5
    assert plan["longer_than_advised"] is True
    code, text, _ = _run(*args)
    assert code == 0
    assert f"  {plan['days_needed']:,} days at the current traffic (extrapolated the last 28 days:" in text
    assert f"{plan['units_per_variant']:,} units per variant, {plan['units_total']:,} in total over 2 variants" in text
    # A plan of years says it is impractical, and how to shorten it (a trial's 103,166 days came without a word).
    assert "longer than a test should run (over 8 weeks" in " ".join(text.split())


def test_plan_states_a_slow_trickle_of_new_users_to_two_significant_digits(settings: Settings) -> None:
    """Found by a re-check trial: 0.143 new users a day read "0.1" (and "0.0" at --share 0.25) beside days computed
    from the unrounded rate. One new user every seven days over 28 days: 4 users, 1/7 new a day."""
    _activity(settings, [(f"u{first}", f"2026-01-{day:02d}") for first in (1, 8, 15, 22) for day in range(first, 29)])
    code, out, _ = _run("plan", "--baseline", "0.05", "--mde", "0.02", "--json")
    assert code == 0 and plan_rate(out) == pytest.approx(1 / 7, abs=1e-3)
    code, text, _ = _run("plan", "--baseline", "0.05", "--mde", "0.02")
    assert code == 0 and "0.14 new per day, share 1)" in text, text


def test_a_plan_within_weeks_is_not_called_impractical(settings: Settings) -> None:
    # 2,000 users a day, each new: a 5-point lift on a 5% baseline needs days, not months.
    _activity(settings, [(f"u{day}-{i}", f"2026-01-{day:02d}") for day in range(1, 29) for i in range(2000)])
    code, text, _ = _run("plan", "--baseline", "0.05", "--mde", "0.05")
    assert code == 0 and " at the current traffic (" in text, text
    assert "longer than a test should run" not in text


def plan_rate(out: str) -> float:
    return float(json.loads(out)["traffic"]["new_users_per_day"])


def test_plan_on_a_home_whose_run_accepted_no_events_says_days_are_unknown(settings: Settings) -> None:
    _activity(settings, [])
    code, text, err = _run("plan", "--baseline", "0.05", "--mde", "0.02")
    assert code == 0, err
    assert "days needed: unknown (no traffic yet" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "experiment,metric,variant,n,sum,sum_squares\ne,m,control,100,10,10,7\ne,m,treatment,100,12,12\n",
            "line 2: 1 more field(s) than the header's 6 columns ('7'); a comma inside a value needs quotes",
        ),
        (
            "experiment,metric,variant,n,sum,sum_squares,planned_units_per_variant\n"
            "e,m,control,100,10,10,-10\ne,m,treatment,100,12,12,-10\n",
            "line 2, column 'planned_units_per_variant': -10; a planned size is at least 2 units per variant",
        ),
        (
            "experiment,metric,variant,n,sum,sum_squares\ne,m,control,100,5000000,1e300\ne,m,treatment,100,12,12\n",
            "line 2, column 'sum_squares': '1e300' is beyond 1e+75, too large to analyse",
        ),
    ],
)
def test_analyze_refuses_rows_a_trial_found_it_read_quietly(tmp_path: Path, content: str, message: str) -> None:
    """Found by a trial: an extra field, a negative plan and an overflowing sum of squares (read as "an arm has no
    variance") were analysed with exit 0."""
    summary = tmp_path / "bad.csv"
    summary.write_text(content)
    code, out, err = _run("analyze", str(summary))
    assert code == 1 and out == "" and message in err, err


def test_analyze_of_a_folder_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    code, _, err = _run("analyze", str(tmp_path))
    assert code == 1 and err == f"error: {tmp_path}: is a folder; give the summary CSV file itself\n"


def test_analyze_reads_a_bom_and_refuses_a_repeated_column(tmp_path: Path) -> None:
    """Found by a re-check trial: Excel's "CSV UTF-8" (a byte order mark) said "missing column(s) experiment", and
    a header with `sum` twice was analysed with one of them."""
    summary = tmp_path / "excel.csv"
    summary.write_bytes("\ufeff".encode() + TINY.encode())
    assert _run("analyze", str(summary))[0] == 0
    summary.write_text(
        "experiment,metric,variant,n,sum,sum_squares,sum\ne,m,control,10,1,1,2\ne,m,treatment,10,2,2,3\n"
    )
    code, _, err = _run("analyze", str(summary))
    assert code == 1 and err == f"error: {summary}: the header names sum more than once; keep one of each\n"


def test_analyze_says_which_effects_are_cuped_adjusted(tmp_path: Path) -> None:
    """The raw values' difference is -5 and the adjusted effect positive: the table says why they disagree."""
    summary = tmp_path / "cuped.csv"
    rows = [
        "experiment,metric,variant,n,sum,sum_squares,covariate_sum,covariate_sum_squares,main_covariate_sum_product",
        # control: mean 100, covariate mean 100; treatment: mean 95, but its covariate mean is 80 (a lighter group)
        "exp_c,dwell,control,400,40000,4040000,40000,4040000,4030000",
        "exp_c,dwell,treatment,400,38000,3650000,32000,2600000,3060000",
    ]
    summary.write_text("\n".join(rows) + "\n")
    code, out, _ = _run("analyze", str(summary))
    assert code == 0, out
    assert "CUPED (dwell): value is each variant's raw metric; effect and lift are adjusted" in " ".join(out.split())
    code, out, _ = _run("analyze", str(summary), "--json")
    treated = next(r for r in json.loads(out)["results"] if not r["is_control"])
    assert treated["cuped_applied"] is True and treated["value"] == pytest.approx(95.0)
    assert treated["absolute_effect"] > 0  # the raw difference is -5
    code, out, _ = _run("analyze", str(summary), "--no-cuped")
    assert "CUPED (" not in out


def _analysed_at_width(summary: Path, width: int) -> str:
    """What `tailor experiments analyze SUMMARY` prints in a terminal ``width`` columns wide."""
    import io

    from rich.console import Console

    from cli import experiments as experiments_cli

    screen = io.StringIO()
    original = experiments_cli.out
    experiments_cli.out = Console(file=screen, width=width)  # as cli.common.console() in a terminal
    try:
        assert CliRunner().invoke(experiments, ["analyze", str(summary)]).exit_code == 0
    finally:
        experiments_cli.out = original
    return screen.getvalue()


def test_at_80_columns_each_comparison_is_a_block_of_whole_words(tmp_path: Path) -> None:
    """Found by trials: at 120 columns the table read "dwell_per_…" and "no_detect…"; folded instead, at 80 columns
    even the two tables broke every name ("click_throug / h_rate"). Where they do not fit, each comparison is a
    block, a field a line, every name and number whole."""
    summary = tmp_path / "long.csv"
    summary.write_text(
        "experiment,metric,variant,n,sum,sum_squares,planned_units_per_variant\n"
        "exp_a_rather_long_name,session_duration_seconds_per_user,control,2000,200000,25000000,1000\n"
        "exp_a_rather_long_name,session_duration_seconds_per_user,treatment,2000,200400,25100000,1000\n"
    )
    printed = _analysed_at_width(summary, 80)
    assert "│" not in printed and "┃" not in printed and "…" not in printed, printed
    lines = printed.splitlines()
    assert "  session_duration_seconds_per_user / control (control): 100" in lines
    block = lines[lines.index("  session_duration_seconds_per_user / treatment") + 1 :]
    fields = dict(line.strip().split(":", 1) for line in block if line.startswith("    "))
    assert list(fields) == ["value", "effect", "lift", "lift 95% CI", "effect p (Holm)", "decision interval",
                            "P(win)", "decision"]  # fmt: skip
    assert fields["value"].strip() == "100.2" and fields["decision"].strip() in {"no_detectable_effect", "keep_running"}
    assert all(len(line) <= 80 for line in lines if line.startswith("    ") or " / " in line), printed


def test_a_header_too_wide_for_the_terminal_puts_the_counts_under_the_experiment_id(tmp_path: Path) -> None:
    """Found by a re-check trial: at 60 columns the header broke and "0.935" started at column 0."""
    summary = tmp_path / "long.csv"
    summary.write_text(
        "experiment,metric,variant,n,sum,sum_squares,planned_units_per_variant\n"
        "exp_a_rather_long_experiment_name,ctr,control,2000,200,200,1000\n"
        "exp_a_rather_long_experiment_name,ctr,treatment_with_a_long_name,2000,230,230,1000\n"
    )
    lines = _analysed_at_width(summary, 60).splitlines()
    at = lines.index("exp_a_rather_long_experiment_name")
    assert lines[at + 1].startswith("  units: control 2,000, treatment_with_a_long_name 2,000"), lines
    assert all(len(line) <= 60 and (not line or line.startswith(" ")) for line in lines[at + 1 :]), lines


def test_in_an_80_column_terminal_notes_wrap_at_spaces(tmp_path: Path) -> None:
    """Found by a trial: in a terminal the notes were one 300-character line, which the terminal broke mid-word
    ("lif / t's"). Run as a user would, on a pseudo-terminal 80 columns wide: every line fits, and a word broken
    across lines would leave a fragment that is not a word of the note."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    summary = tmp_path / "long.csv"
    summary.write_text(TINY)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    tailor = str(Path(sys.executable).parent / "tailor")
    done = subprocess.run(
        [tailor, "experiments", "analyze", str(summary)], stdout=follower, stderr=follower, env=env, timeout=120
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r", "")
    assert done.returncode == 0, text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    # Wrapped at spaces, the note reads whole once its lines are joined.
    assert "relative lift's interval would be unbounded (Fieller)" in " ".join(text.split()), text
    # A note is one block: its first line indented by 2, the lines it wraps onto by 4 (not back at column 0).
    first = next(n for n, line in enumerate(lines) if line.startswith("  note: "))
    wrapped = list(itertools.takewhile(lambda line: line.startswith("    "), lines[first + 1 :]))
    assert wrapped and "Fieller" in " ".join(lines[first : first + 1 + len(wrapped)]), text
    assert not any(line and not line.startswith(" ") for line in lines[first:]), text


def test_at_120_columns_no_name_or_label_breaks_mid_word(tmp_path: Path) -> None:
    """Found by a trial: at 120 columns the demo's table broke "control_co / py" and "no_detecta / ble_effect", four
    lines a row. Too wide for the terminal, it is printed as two tables: the estimates, then what decides."""
    summary = tmp_path / "demo_like.csv"
    lines = ["experiment,metric,variant,n,sum,sum_squares,planned_units_per_variant"]
    for metric, (mean, spread) in {"dwell_per_user": (790.0, 300.0), "revenue_per_user": (6.2, 4.0)}.items():
        for variant, shift in (("control", 0.0), ("control_copy", -0.02)):
            n, m = 800, mean * (1 + shift)
            lines.append(f"exp_aa_feed,{metric},{variant},{n},{n * m},{n * (m * m + spread * spread)},800")
    summary.write_text("\n".join(lines) + "\n")
    printed = _analysed_at_width(summary, 120)
    rows = [line for line in printed.splitlines() if "│" in line]
    assert rows and max(len(line) for line in rows) <= 120
    metrics = {line.split("│")[0].strip() for line in rows} - {""}
    variants = {line.split("│")[1].strip() for line in rows} - {""}
    assert metrics == {"dwell_per_user", "revenue_per_user"}  # whole, never folded
    assert variants == {"control (control)", "control_copy"}
    headers = [line for line in printed.splitlines() if "┃" in line]
    assert len(headers) == 2 and "P(win)" in headers[0] and "decision" in headers[1]  # two tables
    labels = {line.split("│")[-1].strip() for line in rows[-2:]}
    assert labels <= {"no_detectable_effect", "keep_running", "better", "worse"}, labels
