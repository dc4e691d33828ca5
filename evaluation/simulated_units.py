"""Per-user experiment metrics measured from a simulator output folder, next to the truth they estimate.

The warehouse's definitions, recomputed independently from the simulator's written events and ground truth
(``_truth/``): unit = user; first exposure = the user's earliest exposure event in the experiment; users exposed
to two variants are excluded; the post-exposure window is every event at or after first exposure (all surfaces)
to the end of the data. ``ctr`` = clicks / impressions over post-exposure impressions (a click counts for its
impression); ``converted`` = 1 if any conversion event is in the window. Pre-exposure versions of the same
(``pre_*``) are CUPED covariates.

Next to each measured value sits its exact expectation from the truth, with and without the planted effects,
which is what makes the true effect of an experiment computable. Reads files only (DuckDB); it never runs the
simulator, so the warehouse's tests can use it on any simulated history (JSON Lines or Parquet, faults included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

# truth.json, conversion_model.timing: a conversion happens at session end + uniform(5 s, 120 s), drawn as integer
# milliseconds in [5_000, 120_000). A session ending just before first exposure can still convert after it.
_CONVERSION_DELAY_MS = (5_000, 120_000)


def unit_metrics(out_dir: Path) -> pd.DataFrame:
    """One row per experiment x user exposed to exactly one variant, from a simulator output folder.

    Columns: experiment_id, user_id, variant, first_exposure_ms; measured after first exposure: impressions,
    clicks, converted, dwell_seconds; the same before first exposure (pre_*, CUPED covariates); and the truth:
    expected_clicks (sum of p_click), expected_clicks_no_ctr_effect (the same with every ctr experiment's
    multiplier set to 1), p_converted and p_converted_no_conversion_effect (probability of any counted
    conversion, 1 - prod(1 - p * P(conversion lands after first exposure)) over the user's sessions).
    """
    out = Path(out_dir)
    truth = out / "_truth"
    if not (truth / "truth.json").is_file():
        raise FileNotFoundError(f"{out} is not a simulator output folder (no _truth/truth.json): run `tailor generate`")
    if not (truth / "impressions.parquet").is_file():
        raise FileNotFoundError(
            f"{truth} has no impressions.parquet: simulate with write_impression_truth=True to get click truth"
        )
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        _check_click_truth(con, truth)
        return con.execute(_UNIT_SQL.format(events=_events_source(out), truth=truth)).df()
    finally:
        con.close()


def _events_source(out: Path) -> str:
    if any((out / "events").glob("events-*.parquet")):
        return f"read_parquet('{out}/events/events-*.parquet')"
    # JSON Lines: read every member as text; malformed rows are dropped by their event_id via the faults table.
    columns = "{event_id: 'VARCHAR', event_type: 'VARCHAR', user_id: 'VARCHAR', occurred_at: 'VARCHAR', "
    columns += "received_at: 'VARCHAR', dwell_seconds: 'VARCHAR', experiment_id: 'VARCHAR', variant: 'VARCHAR'}"
    return (
        f"read_json('{out}/events/events-*.jsonl', format = 'newline_delimited', ignore_errors = true, "
        f"columns = {columns})"
    )


def _check_click_truth(con: duckdb.DuckDBPyConnection, truth: Path) -> None:
    """The counterfactual 'no ctr effect' rebuilds p_click from its parts; make sure the parts still add up."""
    worst = con.execute(
        f"""
        select max(abs(p_click - examine * least(1, attract_without_experiments * experiment_multiplier)))
        from read_parquet('{truth}/impressions.parquet')
        where attract_without_experiments < 1
        """
    ).fetchall()[0][0]
    if worst is not None and worst > 1e-12:
        raise ValueError(f"p_click in {truth}/impressions.parquet no longer equals examine * clip(attract * mult)")


_UNIT_SQL = """
with
malformed as (
    select event_id from read_parquet('{truth}/faults.parquet')
    where fault not in ('duplicate', 'late')
),
events as (
    select
        event_type,
        user_id,
        epoch_ms(cast(occurred_at as timestamptz)) as at_ms,
        try_cast(dwell_seconds as double) as dwell_seconds,
        experiment_id,
        variant,
    from {events}
    where event_type in ('exposure', 'conversion', 'view')
        and event_id not in (select event_id from malformed)
    qualify row_number() over (partition by event_id order by received_at) = 1
),
exposures as (
    select
        experiment_id,
        user_id,
        min(at_ms) as first_exposure_ms,
        min(variant) as variant,
        count(distinct variant) as variants,
    from events
    where event_type = 'exposure'
    group by all
),
units as (select * exclude (variants) from exposures where variants = 1),
impressions as (
    select
        user_id,
        epoch_ms(occurred_at) as at_ms,
        clicked,
        p_click,
        examine * attract_without_experiments as p_click_no_ctr_effect,
    from read_parquet('{truth}/impressions.parquet')
),
impression_sums as (
    select
        u.experiment_id,
        u.user_id,
        count(i.at_ms) filter (i.at_ms >= u.first_exposure_ms) as impressions,
        coalesce(sum(i.clicked::int) filter (i.at_ms >= u.first_exposure_ms), 0) as clicks,
        coalesce(sum(i.p_click) filter (i.at_ms >= u.first_exposure_ms), 0) as expected_clicks,
        coalesce(sum(i.p_click_no_ctr_effect) filter (i.at_ms >= u.first_exposure_ms), 0)
            as expected_clicks_no_ctr_effect,
        count(i.at_ms) filter (i.at_ms < u.first_exposure_ms) as pre_impressions,
        coalesce(sum(i.clicked::int) filter (i.at_ms < u.first_exposure_ms), 0) as pre_clicks,
    from units as u
    left join impressions as i on i.user_id = u.user_id
    group by all
),
event_sums as (
    select
        u.experiment_id,
        u.user_id,
        coalesce(bool_or(e.event_type = 'conversion' and e.at_ms >= u.first_exposure_ms), false)::int as converted,
        coalesce(bool_or(e.event_type = 'conversion' and e.at_ms < u.first_exposure_ms), false)::int
            as pre_converted,
        coalesce(sum(e.dwell_seconds) filter (e.event_type = 'view' and e.at_ms >= u.first_exposure_ms), 0)
            as dwell_seconds,
        coalesce(sum(e.dwell_seconds) filter (e.event_type = 'view' and e.at_ms < u.first_exposure_ms), 0)
            as pre_dwell_seconds,
    from units as u
    left join events as e on e.user_id = u.user_id and e.event_type in ('conversion', 'view')
    group by all
),
sessions as (
    select
        user_id,
        epoch_ms(ended_at) as ended_ms,
        p_conversion,
        p_conversion_without_experiments,
    from read_parquet('{truth}/sessions.parquet')
),
conversion_truth as (
    -- P(a session's conversion lands at or after first exposure) = share of the uniform delay that gets there.
    select
        u.experiment_id,
        u.user_id,
        1 - exp(sum(ln(greatest(1 - s.p_conversion * s.lands, 1e-300)))) as p_converted,
        1 - exp(sum(ln(greatest(1 - s.p_conversion_without_experiments * s.lands, 1e-300))))
            as p_converted_no_conversion_effect,
    from units as u
    join (
        select
            s.*,
            u.experiment_id,
            greatest(0, least(1, ({delay_hi} - greatest(u.first_exposure_ms - s.ended_ms, {delay_lo}))
                / ({delay_hi} - {delay_lo}))) as lands,
        from sessions as s
        join units as u using (user_id)
    ) as s on s.user_id = u.user_id and s.experiment_id = u.experiment_id
    group by all
)
select
    u.experiment_id,
    u.user_id,
    u.variant,
    u.first_exposure_ms,
    i.impressions,
    i.clicks,
    e.converted,
    e.dwell_seconds,
    i.pre_impressions,
    i.pre_clicks,
    e.pre_converted,
    e.pre_dwell_seconds,
    i.expected_clicks,
    i.expected_clicks_no_ctr_effect,
    coalesce(c.p_converted, 0) as p_converted,
    coalesce(c.p_converted_no_conversion_effect, 0) as p_converted_no_conversion_effect,
from units as u
join impression_sums as i using (experiment_id, user_id)
join event_sums as e using (experiment_id, user_id)
left join conversion_truth as c using (experiment_id, user_id)
order by u.experiment_id, u.user_id
""".replace("{delay_lo}", str(_CONVERSION_DELAY_MS[0])).replace("{delay_hi}", str(_CONVERSION_DELAY_MS[1]))


@dataclass(frozen=True)
class ExperimentSpec:
    """What the analysis needs to know about one experiment, read from truth.json."""

    experiment_id: str
    target: str  # ctr, conversion or none
    variants: tuple[str, ...]
    multipliers: tuple[float, ...]

    @property
    def has_effect(self) -> bool:
        return len(set(self.multipliers)) > 1


def experiment_specs(out_dir: Path) -> list[ExperimentSpec]:
    """The experiments of a simulation, from its truth.json.

    Raises:
        ValueError: two experiments with an effect share a target. The truth tables hold the product of all
            experiments' multipliers, so one experiment's counterfactual can only be rebuilt when it is the
            only one with an effect on its target.
    """
    doc = json.loads((Path(out_dir) / "_truth" / "truth.json").read_text())
    specs = [
        ExperimentSpec(
            experiment_id=e["experiment_id"],
            target=e["target"],
            variants=tuple(e["variants"]),
            multipliers=tuple(float(a["multiplier"]) for a in e["arms"]),
        )
        for e in doc["experiments"]
    ]
    for target in ("ctr", "conversion"):
        with_effect = [s.experiment_id for s in specs if s.target == target and s.has_effect]
        if len(with_effect) > 1:
            raise ValueError(
                f"experiments {with_effect} all change {target}: calibration can separate their true effects only "
                "when at most one experiment per target has multipliers other than 1"
            )
    return specs
