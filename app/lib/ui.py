"""Small Streamlit helpers shared by the pages: the page list, the no-data message, number formats."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd
import streamlit as st

from app.lib import marts

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

VIEWS = Path(__file__).resolve().parent.parent / "views"
#: url slug -> (page file, title). The router (app/streamlit_app.py) and the tests read this.
PAGES = {
    "overview": (str(VIEWS / "overview.py"), "Overview"),
    "experiments": (str(VIEWS / "experiments.py"), "Experiments"),
    "preview": (str(VIEWS / "preview.py"), "Personalization preview"),
    "health": (str(VIEWS / "health.py"), "Model and data health"),
}


#: What a cell without a value shows.
NOT_DEFINED = "–"


def formatted_table(
    frame: pd.DataFrame, formats: dict[str, str], text: tuple[str, ...] = ()
) -> tuple[Styler, dict[str, Any]]:
    """``frame`` for `st.dataframe`, each column in ``formats`` (column -> ``str.format`` spec, e.g. ``"{:.2%}"``)
    shown in its format, and `NOT_DEFINED` where a value is missing; with the column configuration that goes with it.

    Streamlit's grid draws a missing number as a grey "None" whatever a Styler's ``na_rep`` says (its own display
    value is ignored for a null cell: streamlit/streamlit#11123, #7360; a trial's screenshots showed it while the
    Styler said "–"). So a column with a missing value becomes text (formatted, right-aligned); a column without
    stays numbers, formatted by the Styler, and sorts as numbers.

    Args:
        frame: the table.
        formats: the number columns' formats.
        text: text columns whose missing cells read `NOT_DEFINED` too.

    Returns:
        (styler, column_config): pass both to `st.dataframe`.
    """
    shown = frame.copy()
    for column in text:
        if column in shown:
            shown[column] = [NOT_DEFINED if pd.isna(v) else v for v in shown[column]]
    numeric: dict[str, str] = {}
    config: dict[str, Any] = {}
    for column, spec in formats.items():
        if column not in shown:
            continue
        if shown[column].isna().any():
            shown[column] = [NOT_DEFINED if pd.isna(v) else spec.format(v) for v in shown[column]]
            config[column] = st.column_config.TextColumn(alignment="right")
        else:
            numeric[column] = spec
    return shown.style.format(numeric, na_rep=NOT_DEFINED), config  # type: ignore[arg-type]


def stop_no_data(error: marts.NoData | str) -> NoReturn:
    """Say what is missing and what to run (`make demo`), then end the page: never a traceback."""
    text = str(error)
    if marts.MAKE_DEMO not in text:
        text += f" Run `{marts.MAKE_DEMO}` to build a demo history."
    st.info(text, icon=":material/info:")
    st.stop()
    raise AssertionError("st.stop() returned")  # for the type checker: st.stop raises


def pct(value: Any, digits: int = 2) -> str:
    """``12.34%``, or ``-`` for a missing value."""
    return "-" if _missing(value) else f"{value:.{digits}%}"


def num(value: Any, digits: int = 0) -> str:
    """``1,234`` (thousands separators), or ``-``."""
    return "-" if _missing(value) else f"{value:,.{digits}f}"


def rate(value: Any) -> str:
    """A rate that may be well under 1: ``1,234`` and ``12`` whole, ``3.5`` and ``0.15`` to two significant digits
    (``0`` for none), or ``-`` (a trial's planner read "0 new users a day" for 0.15, beside 70,940 days)."""
    from ml.experiments.traffic import rate_text

    return "-" if _missing(value) else rate_text(float(value))


def when(value: pd.Timestamp | datetime | None) -> str:
    """``2026-02-01 09:46 UTC``, or ``-``."""
    if value is None or pd.isna(value):
        return "-"
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def literal(text: str) -> str:
    """``text`` as a Markdown code span, for st.markdown and the message boxes: shown exactly as typed. A trial's
    typed id ``' OR 1=1 --`` was shown as ``' OR 1=1 —``, and ``*``, ``_`` or ``$`` would turn into emphasis or
    math. The fence is one backtick longer than any run of backticks inside (CommonMark, "Code spans"), with a
    space inside it when the text starts or ends with one."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
