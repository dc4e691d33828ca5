"""Plotly figures for the pages: plain functions from frames to figures (no Streamlit here)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ml.monitoring.drift import YOUNG

_HEIGHT = 320


def kpi_lines(daily: pd.DataFrame, kpis: dict[str, tuple[str, str]]) -> go.Figure:
    """One small line chart per KPI (rows), sharing the day axis.

    Args:
        daily: one row per day with ``day`` and each KPI column.
        kpis: column -> (label, d3 number format).
    """
    fig = make_subplots(
        rows=len(kpis), cols=1, shared_xaxes=True, subplot_titles=[v[0] for v in kpis.values()], vertical_spacing=0.06
    )
    for row, (column, (label, fmt)) in enumerate(kpis.items(), start=1):
        fig.add_trace(
            go.Scatter(
                x=daily["day"],
                y=daily[column],
                mode="lines+markers",
                name=label,
                hovertemplate=f"%{{x|%Y-%m-%d}}: %{{y:{fmt}}}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        fig.update_yaxes(tickformat=fmt, row=row, col=1, rangemode="tozero")
    fig.update_layout(height=170 * len(kpis), showlegend=False, margin={"t": 40, "b": 20, "l": 10, "r": 10})
    return fig


def quarantine_bars(by_reason: pd.DataFrame) -> go.Figure:
    """Quarantined rows by source and reason (horizontal bars)."""
    labels = by_reason["source"].astype(str) + ": " + by_reason["reject_reason"].astype(str)
    fig = go.Figure(
        go.Bar(x=by_reason["rows"], y=labels, orientation="h", hovertemplate="%{y}: %{x:,} rows<extra></extra>")
    )
    fig.update_layout(
        height=max(200, 40 * len(by_reason) + 80),
        margin={"t": 30, "b": 20, "l": 10, "r": 10},
        xaxis_title="rows quarantined",
        yaxis={"autorange": "reversed"},
    )
    return fig


def forest(results: pd.DataFrame) -> go.Figure:
    """CI forest plot of each treatment row's relative lift (absolute where the relative lift is undefined), with
    the always-valid interval as a lighter bar behind the fixed-horizon one."""
    rows = results.loc[~results["is_control"].astype(bool)].copy()
    relative = rows["relative_lift"].notna()
    rows["label"] = rows["metric"] + " (" + rows["variant"] + ")" + (~relative).map({True: " [abs]", False: ""})
    est = rows["relative_lift"].where(relative, rows["absolute_effect"])
    low = rows["relative_ci_low"].where(relative, rows["absolute_ci_low"])
    high = rows["relative_ci_high"].where(relative, rows["absolute_ci_high"])
    fig = go.Figure()
    seq = rows["sequential_ci_low"].notna() & relative
    fig.add_trace(
        go.Scatter(
            x=pd.concat([rows.loc[seq, "sequential_ci_low"], rows.loc[seq, "sequential_ci_high"]]),
            y=pd.concat([rows.loc[seq, "label"], rows.loc[seq, "label"]]),
            mode="markers",
            marker={"symbol": "line-ns-open", "size": 14, "color": "#999"},
            name="always-valid CI ends",
            hovertemplate="%{y}: %{x:.2%}<extra>always-valid</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=est,
            y=rows["label"],
            mode="markers",
            marker={"size": 10},
            error_x={"type": "data", "symmetric": False, "array": high - est, "arrayminus": est - low},
            name="lift, 95% CI",
            customdata=rows[["decision"]],
            hovertemplate="%{y}: %{x:.2%}<br>%{customdata[0]}<extra></extra>",
        )
    )
    fig.add_vline(x=0, line_dash="dash", line_color="#666")
    fig.update_layout(
        height=max(220, 60 * len(rows) + 100),
        xaxis_tickformat=".1%",
        margin={"t": 30, "b": 20, "l": 10, "r": 10},
        xaxis_title="relative lift (treatment / control - 1)",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def cumulative_lift(daily: pd.DataFrame, metric: str) -> go.Figure:
    """The cumulative relative lift of one metric by day, with its fixed-horizon CI and the always-valid band."""
    fig = go.Figure()
    for variant, rows in daily.loc[daily["metric"] == metric].groupby("variant", sort=True):
        fig.add_trace(
            go.Scatter(
                x=rows["as_of_date"],
                y=rows["sequential_ci_high"],
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=rows["as_of_date"],
                y=rows["sequential_ci_low"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(99,110,250,0.15)",
                name=f"{variant}: always-valid band",
            )
        )
        name = f"{variant}: cumulative lift"
        fig.add_trace(_points_with_ci(rows, "as_of_date", "relative_lift", "relative_ci_low", "relative_ci_high", name))
    return _around_zero(
        fig, yaxis_tickformat=".1%", legend={"orientation": "h", "y": -0.2}, yaxis_title=f"{metric}: relative lift"
    )


def novelty(frame: pd.DataFrame, metric: str) -> go.Figure:
    """The absolute effect on each day since exposure alone, with its 95% CI."""
    fig = go.Figure()
    for variant, rows in frame.loc[frame["metric"] == metric].groupby("variant", sort=True):
        fig.add_trace(_points_with_ci(rows, "days_since_exposure", "effect", "ci_low", "ci_high", str(variant)))
    return _around_zero(fig, xaxis_title="days since first exposure", yaxis_title=f"{metric}: effect that day")


def _points_with_ci(rows: pd.DataFrame, x: str, y: str, low: str, high: str, name: str) -> go.Scatter:
    """A line of estimates over `x` with asymmetric error bars from the `low` / `high` columns."""
    return go.Scatter(
        x=rows[x],
        y=rows[y],
        mode="lines+markers",
        name=name,
        error_y={
            "type": "data",
            "symmetric": False,
            "array": rows[high] - rows[y],
            "arrayminus": rows[y] - rows[low],
            "thickness": 1,
        },
    )


def _around_zero(fig: go.Figure, **layout: Any) -> go.Figure:
    """The effect charts' frame: a dashed line at zero (no effect), the common height and margins."""
    fig.add_hline(y=0, line_dash="dash", line_color="#666")
    fig.update_layout(height=_HEIGHT, margin={"t": 30, "b": 20, "l": 10, "r": 10}, **layout)
    return fig


#: A drift row's bar colour by its verdict (`ml.monitoring.drift`: ok, warn, fail).
STATUS_COLORS = {"fail": "#d62728", "warn": "#ff7f0e", "ok": "#2ca02c"}


def psi_bars(psi: pd.DataFrame, warn: float, fail: float) -> go.Figure:
    """What each feature's drift verdict judges, largest first, coloured by that verdict, with the warn and fail
    thresholds: the PSI beyond the largest one of the reference's own days shows, 0 where sampling noise explains
    the PSI (``excess_psi``; `ml.monitoring.drift.FeatureDrift.excess`). The raw PSI is in the hover: plotted
    against the thresholds it read as a failure where the check had passed (a trial). A table from before
    ``excess_psi`` existed is drawn on its raw PSI. Features the check did not judge (``young``: a window longer
    than the history before the reference) are left out: drawn grey, their bars past the lines read as failures
    under a passing verdict (a trial); the page names them instead."""
    judged = "excess_psi" if "excess_psi" in psi else "psi"
    status = psi["status"] if "status" in psi else pd.Series("ok", index=psi.index)
    rows = psi.loc[status != YOUNG].sort_values(judged, ascending=False, kind="stable")
    status = status.loc[rows.index]
    extra = [c for c in ("psi", "day_baseline_psi", "noise_psi") if c in rows]
    fig = go.Figure(
        go.Bar(
            x=rows[judged],
            y=rows["feature"],
            orientation="h",
            marker_color=[STATUS_COLORS.get(str(s), STATUS_COLORS["ok"]) for s in status],
            customdata=pd.concat([status.rename("status"), rows[extra]], axis=1).to_numpy(),
            hovertemplate=_drift_hover(judged, extra),
        )
    )
    fig.add_vline(x=warn, line_dash="dot", line_color=STATUS_COLORS["warn"])
    fig.add_vline(x=fail, line_dash="dash", line_color=STATUS_COLORS["fail"])
    title = "PSI beyond a reference day's own (what the verdict judges)" if judged == "excess_psi" else "PSI"
    fig.update_layout(
        height=max(240, 18 * len(rows) + 80),
        margin={"t": 30, "b": 20, "l": 10, "r": 10},
        xaxis_title=title,
        yaxis={"autorange": "reversed"},
    )
    return fig


def _drift_hover(judged: str, extra: list[str]) -> str:
    words = {"psi": "PSI", "day_baseline_psi": "a reference day's own", "noise_psi": "sampling noise up to"}
    parts = [f"{words[c]} %{{customdata[{i + 1}]:.3f}}" for i, c in enumerate(extra)]
    head = "%{y}: %{customdata[0]}, " + ("excess %{x:.3f}" if judged == "excess_psi" else "PSI %{x:.3f}")
    return head + (f" ({', '.join(parts)})" if parts else "") + "<extra></extra>"


def model_metrics(versions: pd.DataFrame, metrics: list[str]) -> go.Figure:
    """Grouped bars of each version's test-window metrics (champion and challenger labelled)."""
    fig = go.Figure()
    for metric in metrics:
        if metric in versions:
            fig.add_trace(go.Bar(name=metric, x=versions["label"], y=versions[metric], texttemplate="%{y:.4f}"))
    fig.update_layout(barmode="group", height=_HEIGHT, margin={"t": 30, "b": 20, "l": 10, "r": 10})
    return fig
