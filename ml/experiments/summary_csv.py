"""Summary statistics from another system, as a CSV: checked cell by cell, then shaped like the stats marts.

One row per experiment x metric x variant. Required: experiment (or experiment_id), metric, variant, n, sum,
sum_squares. Optional: is_control, weight, planned_units_per_variant, metric_kind, metric_role,
higher_is_better, non_inferiority_margin, the ratio columns (denominator_sum, denominator_sum_squares,
main_denominator_sum_product) and the CUPED columns (covariate_sum, covariate_sum_squares,
main_covariate_sum_product; for ratio metrics also the covariate_denominator_* products). docs/experiments.md
describes each column; errors name the line and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ml.experiments.moments import PRODUCT_COLUMNS, SUM_COLUMNS

REQUIRED = ("experiment_id", "metric", "variant", "n", "sum", "sum_squares")
NUMERIC = tuple(dict.fromkeys(("sum", *SUM_COLUMNS, *PRODUCT_COLUMNS.values(), "weight", "non_inferiority_margin")))
RATIO_COLUMNS = ("denominator_sum", "denominator_sum_squares", "main_denominator_sum_product")
COVARIATE_COLUMNS = ("covariate_sum", "covariate_sum_squares", "main_covariate_sum_product")
KINDS = ("mean", "proportion", "ratio")
#: Each sum beside its sum of squares: the pairs whose variance must not be negative.
SQUARED = (
    ("sum", "sum_squares"),
    ("denominator_sum", "denominator_sum_squares"),
    ("covariate_sum", "covariate_sum_squares"),
)
#: The largest magnitude a number may have: squared twice (a variance's variance, Welch's degrees of freedom) it
#: stays within double precision (about 1.8e308).
MAX_MAGNITUDE = 1e75
#: How far (relatively) a sum of squares may fall below sum^2 / n and still be read as a zero variance: rounding.
SQUARES_RTOL = 1e-9
ROLES = ("primary", "secondary", "guardrail")
TRUE, FALSE = ("true", "1", "yes", "t", "y"), ("false", "0", "no", "f", "n", "")


class SummaryFileError(ValueError):
    """A summary CSV that cannot be analysed; the message names the line and column."""


def _other_separator(header: list[str]) -> str | None:
    """The separator a one-column header uses instead of commas (';' from a spreadsheet in a locale whose decimal
    mark is a comma, or a tab or '|'), when splitting on it gives at least two of the required names (quoted or
    not); else None."""
    if len(header) != 1:
        return None
    for separator in (";", "\t", "|"):
        names = {n.strip().strip('"').strip() for n in header[0].split(separator)}
        if len(names & {*REQUIRED, "experiment"}) >= 2:
            return separator
    return None


def read_summary_csv(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stats table and the variants table (control, weight, plan) from a summary CSV."""
    if not path.exists():
        raise SummaryFileError(f"{path}: no such file")
    if path.is_dir():
        raise SummaryFileError(f"{path}: is a folder; give the summary CSV file itself")
    try:
        # utf-8-sig: a byte order mark (Excel's "CSV UTF-8" export writes one) is not part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            raw_rows = list(reader)
    except UnicodeDecodeError:
        raise SummaryFileError(f"{path}: not a UTF-8 text file; export the summary as CSV") from None
    except csv.Error as error:
        raise SummaryFileError(f"{path}: not a readable CSV ({error})") from None
    aliases = {"experiment": "experiment_id"}
    columns = [aliases.get(h, h) for h in header]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SummaryFileError(f"{path}: the header names {', '.join(repeated)} more than once; keep one of each")
    # Said with the header's names (experiment, not the experiment_id it is read as), as the header must spell them.
    wanted = "experiment, metric, variant, n, sum, sum_squares"
    if not header:
        raise SummaryFileError(f"{path}: the file is empty; its first line must be a header with {wanted}")
    missing = [{"experiment_id": "experiment"}.get(c, c) for c in REQUIRED if c not in columns]
    if missing:
        other = _other_separator(header)
        if other is not None:  # a trial's ';' export was told it lacked every column
            raise SummaryFileError(
                f"{path}: the header is one column separated by {other!r}, not by commas; export the summary with "
                f"comma separators and '.' as the decimal mark (its header: {wanted})"
            )
        raise SummaryFileError(f"{path}: missing column(s) {', '.join(missing)}; the header must include {wanted}")
    if not raw_rows:
        raise SummaryFileError(f"{path}: no data rows below the header")
    for line, raw in enumerate(raw_rows, start=2):
        extra = raw.get(None)  # csv.DictReader keeps fields past the header under the key None
        if extra:
            raise SummaryFileError(
                f"{path}, line {line}: {len(extra)} more field(s) than the header's {len(header)} columns "
                f"({', '.join(repr(e) for e in extra[:3])}); a comma inside a value needs quotes"
            )
    rows = [_row(path, line, dict(zip(columns, (raw.get(h) for h in header), strict=True)))
            for line, raw in enumerate(raw_rows, start=2)]  # fmt: skip
    stats = pd.DataFrame(rows)
    _check_groups(path, stats)
    variants = _variants(stats)
    _check_complete(path, stats, variants)
    return stats, variants


def _row(path: Path, line: int, raw: dict[str, str | None]) -> dict[str, object]:
    def where(column: str) -> str:
        return f"{path}, line {line}, column {column!r}"

    row: dict[str, object] = {}
    for column in ("experiment_id", "metric", "variant"):
        value = (raw.get(column) or "").strip()
        if not value:
            raise SummaryFileError(f"{where(column)}: empty; every row names its experiment, metric and variant")
        row[column] = value
    n_text = (raw.get("n") or "").strip()
    try:
        n = int(n_text)
    except ValueError:
        raise SummaryFileError(f"{where('n')}: {n_text!r} is not a whole number of units") from None
    if n < 2:
        raise SummaryFileError(f"{where('n')}: {n} units; at least 2 are needed to estimate a variance")
    row["n"] = n
    for column in NUMERIC:
        text = (raw.get(column) or "").strip()
        if not text:
            row[column] = None
            continue
        try:
            number = float(text)
        except ValueError:
            raise SummaryFileError(f"{where(column)}: {text!r} is not a number") from None
        if not math.isfinite(number):
            raise SummaryFileError(f"{where(column)}: {text!r} is not a finite number")
        if abs(number) > MAX_MAGNITUDE:
            raise SummaryFileError(
                f"{where(column)}: {text!r} is beyond {MAX_MAGNITUDE:g}, too large to analyse: the variances would "
                "overflow double precision; rescale the metric (e.g. to thousands)"
            )
        row[column] = number
    for column in ("sum", "sum_squares"):
        if row[column] is None:
            raise SummaryFileError(f"{where(column)}: empty; sum and sum_squares are required")
    for column in ("sum_squares", "denominator_sum_squares", "covariate_sum_squares"):
        square = row.get(column)
        if isinstance(square, float) and square < 0:
            raise SummaryFileError(f"{where(column)}: {square} is negative; a sum of squares cannot be")
    arm = f"experiment {row['experiment_id']!r}, metric {row['metric']!r}, variant {row['variant']!r}"
    if (raw.get("metric_kind") or "").strip() == "proportion":  # its own rule says more than the general one below
        _check_proportion(where, arm, n, row)
    for total_column, square_column in SQUARED:
        total, square = row.get(total_column), row.get(square_column)
        if not isinstance(total, float) or not isinstance(square, float):
            continue
        floor = total * total / n
        # Sum x^2 >= (sum x)^2 / n for any n numbers (Cauchy-Schwarz; the sample variance is their difference over
        # n - 1), so less is no data set's. A relative slack of 1e-9 keeps a zero variance computed in floating point.
        if square < floor * (1 - SQUARES_RTOL):
            raise SummaryFileError(
                f"{where(square_column)}: {square:g} is less than {total_column}^2 / n = {total:g}^2 / {n} = "
                f"{floor:g} ({arm}); a sum of squares must be at least {total_column}^2 / n, else the variance would "
                f"be negative: check that {square_column} sums each unit's squared value (not the square of a mean)"
            )
    given_ratio = [c for c in RATIO_COLUMNS if row.get(c) is not None]
    if given_ratio and len(given_ratio) != len(RATIO_COLUMNS):
        absent = next(c for c in RATIO_COLUMNS if row.get(c) is None)
        raise SummaryFileError(f"{where(absent)}: empty, but a ratio metric needs all of {', '.join(RATIO_COLUMNS)}")
    given_cov = [c for c in COVARIATE_COLUMNS if row.get(c) is not None]
    if given_cov and len(given_cov) != len(COVARIATE_COLUMNS):
        absent = next(c for c in COVARIATE_COLUMNS if row.get(c) is None)
        raise SummaryFileError(f"{where(absent)}: empty, but CUPED needs all of {', '.join(COVARIATE_COLUMNS)}")
    kind = (raw.get("metric_kind") or "").strip() or ("ratio" if given_ratio else "mean")
    if kind not in KINDS:
        raise SummaryFileError(f"{where('metric_kind')}: {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "ratio" and not given_ratio:
        raise SummaryFileError(f"{where('denominator_sum')}: empty, but metric_kind is ratio")
    row["metric_kind"] = kind
    denominator = row.get("denominator_sum")
    if kind == "ratio" and isinstance(denominator, float) and denominator <= 0:
        raise SummaryFileError(
            f"{where('denominator_sum')}: {denominator:g} ({arm}); a ratio's denominator counts something "
            "(impressions, sessions) and must add up to more than 0, else the ratio has no value"
        )
    role = (raw.get("metric_role") or "").strip() or "primary"
    if role not in ROLES:
        raise SummaryFileError(f"{where('metric_role')}: {role!r}; use one of {', '.join(ROLES)}")
    row["metric_role"] = role
    if role == "guardrail" and row.get("non_inferiority_margin") is None:
        raise SummaryFileError(f"{where('non_inferiority_margin')}: a guardrail needs a margin (e.g. 0.05 for 5%)")
    for column, default in (("higher_is_better", True), ("is_control", None)):
        row[column] = _bool(where(column), raw.get(column), default)
    planned = (raw.get("planned_units_per_variant") or "").strip()
    try:
        row["planned_units_per_variant"] = int(float(planned)) if planned else None
    except (ValueError, OverflowError):
        raise SummaryFileError(f"{where('planned_units_per_variant')}: {planned!r} is not a number") from None
    if isinstance(row["planned_units_per_variant"], int) and row["planned_units_per_variant"] < 2:
        raise SummaryFileError(
            f"{where('planned_units_per_variant')}: {planned}; a planned size is at least 2 units per variant "
            "(leave it empty when there is no plan)"
        )
    weight = row.get("weight")
    if isinstance(weight, float) and weight <= 0:
        raise SummaryFileError(f"{where('weight')}: {weight}; a traffic weight must be positive")
    return row


def _check_proportion(where: Callable[[str], str], arm: str, n: int, row: dict[str, object]) -> None:
    """A proportion's units are each 0 or 1: its sum is the successes, between 0 and n, and its sum of squares equals
    its sum (1^2 = 1). Anything else is not a count of successes (e.g. a rate summed, or a negative count).

    Raises:
        SummaryFileError: naming the line, the column, the arm and what a proportion's sums must be.
    """
    total, square = row["sum"], row["sum_squares"]
    assert isinstance(total, float) and isinstance(square, float)
    if not 0 <= total <= n:
        raise SummaryFileError(
            f"{where('sum')}: {total:g} successes of {n} units ({arm}); a proportion's sum counts the units with a "
            f"success, between 0 and n"
        )
    if abs(square - total) > SQUARES_RTOL * max(1.0, total):
        raise SummaryFileError(
            f"{where('sum_squares')}: {square:g}, but sum is {total:g} ({arm}); for a proportion each unit is 0 or 1, "
            "so sum_squares equals sum (or use metric_kind mean)"
        )


def _bool(where: str, text: str | None, default: bool | None) -> bool | None:
    value = (text or "").strip().lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise SummaryFileError(f"{where}: {text!r} is not true or false")


def _check_groups(path: Path, stats: pd.DataFrame) -> None:
    duplicated = stats[stats.duplicated(["experiment_id", "metric", "variant"], keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise SummaryFileError(
            f"{path}: experiment {first['experiment_id']!r}, metric {first['metric']!r}, variant "
            f"{first['variant']!r} appears more than once; give one row per experiment x metric x variant"
        )
    for experiment_id, rows in stats.groupby("experiment_id"):
        if rows["variant"].nunique() < 2:
            raise SummaryFileError(f"{path}: experiment {experiment_id!r} has one variant; a comparison needs two")


def _check_complete(path: Path, stats: pd.DataFrame, variants: pd.DataFrame) -> None:
    """Every metric of an experiment has a row for every variant of it: a missing row would silently drop a
    comparison (no control: the whole metric)."""
    for experiment_id, rows in stats.groupby("experiment_id", sort=False):
        arms = variants[variants["experiment_id"] == experiment_id]
        control = str(arms.loc[arms["is_control"], "variant"].iloc[0])
        for metric, metric_rows in rows.groupby("metric", sort=False):
            present = set(metric_rows["variant"])
            absent = [str(v) for v in arms["variant"] if v not in present]
            if not absent:
                continue
            if control in absent:
                raise SummaryFileError(
                    f"{path}: experiment {experiment_id!r}, metric {metric!r} has no row for the control variant "
                    f"{control!r}; every metric needs one (it is the baseline of every comparison)"
                )
            raise SummaryFileError(
                f"{path}: experiment {experiment_id!r}, metric {metric!r} has no row for variant "
                f"{', '.join(repr(v) for v in absent)}; give one row per experiment x metric x variant "
                "(n and sums of the units that variant had)"
            )


def _variants(stats: pd.DataFrame) -> pd.DataFrame:
    """Per experiment x variant: the control (marked, else 'control', else the first variant listed), the
    weight (given, else an equal split) and the planned size."""
    out = []
    for experiment_id, rows in stats.groupby("experiment_id", sort=False):
        variants = list(dict.fromkeys(rows["variant"]))
        marked = sorted({str(v) for v in rows.loc[rows["is_control"].eq(True), "variant"]})
        if len(marked) > 1:
            raise SummaryFileError(f"experiment {experiment_id!r}: more than one control variant ({', '.join(marked)})")
        control = marked[0] if marked else ("control" if "control" in variants else variants[0])
        for variant in variants:
            mine = rows[rows["variant"] == variant]
            weights = mine["weight"].dropna()
            planned = mine["planned_units_per_variant"].dropna()
            out.append(
                {
                    "experiment_id": experiment_id,
                    "variant": variant,
                    "is_control": variant == control,
                    "weight": float(weights.iloc[0]) if len(weights) else 1.0 / len(variants),
                    "planned_units_per_variant": int(planned.iloc[0]) if len(planned) else None,
                }
            )
    return pd.DataFrame(out)
