{#-
  One row per experiment, analysed unit and calendar day from its first exposure to the newest event day: what the
  unit did that day after its first exposure, the running totals since exposure, and its pre-period totals (the
  CUPED covariates). Every day is present, active or not, so a day's cumulative row is the unit's state that day
  and a unit with no activity counts as a zero, not as missing.

  Three stats marts read this: overall (the last day's running totals), daily cumulative (sequential monitoring)
  and by days since exposure (novelty). Money and dwell stay decimals so sums are exact and reruns agree.
-#}
{{ config(materialized='table') }}

{%- set pre_days = var('experiment_pre_period_days') %}
{%- set measures = ['impressions', 'clicks', 'conversions', 'revenue_usd', 'dwell_seconds', 'sessions',
                    'session_seconds'] %}

with units as (

    select * from {{ ref('fct_experiment_units') }}
    where not is_crossover and not is_unknown_variant

),

impressions as (

    select * from {{ ref('fct_impressions') }}

),

events as (

    select * from {{ ref('fct_events') }}
    where event_type in ('conversion', 'view')

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

data_end as (

    select max(event_date) as last_date from {{ ref('fct_events') }}

),

impression_activity as (

    select
        units.experiment_id,
        units.user_id,
        impressions.occurred_at >= units.first_exposed_at as is_post,
        greatest(impressions.event_date, units.first_exposed_date) as activity_date,
        count(*) as impressions,
        count(*) filter (where impressions.is_clicked) as clicks,
        0 as conversions,
        cast(0 as decimal(18, 4)) as revenue_usd,
        cast(0 as decimal(18, 4)) as dwell_seconds,
        0 as sessions,
        cast(0 as decimal(18, 4)) as session_seconds
    from units
    inner join impressions
        on units.user_id = impressions.user_id
        and impressions.occurred_at >= units.first_exposed_at - interval {{ pre_days }} day
    group by all

),

event_activity as (

    select
        units.experiment_id,
        units.user_id,
        events.occurred_at >= units.first_exposed_at as is_post,
        greatest(events.event_date, units.first_exposed_date) as activity_date,
        0 as impressions,
        0 as clicks,
        count(*) filter (where events.event_type = 'conversion') as conversions,
        coalesce(sum(cast(events.value * fx_rates.usd_per_unit as decimal(18, 4))), 0) as revenue_usd,
        coalesce(sum(cast(events.dwell_seconds as decimal(18, 4))), 0) as dwell_seconds,
        0 as sessions,
        cast(0 as decimal(18, 4)) as session_seconds
    from units
    inner join events
        on units.user_id = events.user_id
        and events.occurred_at >= units.first_exposed_at - interval {{ pre_days }} day
    left join fx_rates on events.currency = fx_rates.currency
    group by all

),

session_activity as (

    -- A session counts after exposure if it ends at or after it (the exposing session itself is post-exposure);
    -- before, only if it lies wholly inside the pre-period.
    select
        units.experiment_id,
        units.user_id,
        sessions.session_end >= units.first_exposed_at as is_post,
        greatest(sessions.session_date, units.first_exposed_date) as activity_date,
        0 as impressions,
        0 as clicks,
        0 as conversions,
        cast(0 as decimal(18, 4)) as revenue_usd,
        cast(0 as decimal(18, 4)) as dwell_seconds,
        count(*) as sessions,
        coalesce(sum(cast(sessions.duration_seconds as decimal(18, 4))), 0) as session_seconds
    from units
    inner join sessions
        on units.user_id = sessions.user_id
        and sessions.session_start >= units.first_exposed_at - interval {{ pre_days }} day
    group by all

),

activity as (

    select
        experiment_id,
        user_id,
        is_post,
        activity_date,
        {%- for m in measures %}
        sum({{ m }}) as {{ m }}{{ "," if not loop.last }}
        {%- endfor %}
    from (
        select * from impression_activity
        union all
        select * from event_activity
        union all
        select * from session_activity
    )
    group by all

),

pre_period as (

    select
        experiment_id,
        user_id,
        {%- for m in measures %}
        sum({{ m }}) as pre_{{ m }}{{ "," if not loop.last }}
        {%- endfor %}
    from activity
    where not is_post
    group by all

),

spine as (

    select
        units.experiment_id,
        units.user_id,
        units.variant,
        units.first_exposed_date,
        {{ day_series('units.first_exposed_date', 'data_end.last_date') }} as activity_date
    from units
    cross join data_end

),

final as (

    select
        spine.experiment_id,
        spine.user_id,
        spine.variant,
        spine.activity_date,
        cast({{ days_between('spine.first_exposed_date', 'spine.activity_date') }} as integer) as days_since_exposure,
        {%- for m in measures %}
        coalesce(activity.{{ m }}, 0) as {{ m }},
        {%- endfor %}
        {%- for m in measures %}
        sum(coalesce(activity.{{ m }}, 0)) over (
            partition by spine.experiment_id, spine.user_id order by spine.activity_date
        ) as cum_{{ m }},
        {%- endfor %}
        {%- for m in measures %}
        coalesce(pre_period.pre_{{ m }}, 0) as pre_{{ m }}{{ "," if not loop.last }}
        {%- endfor %}
    from spine
    left join activity
        on spine.experiment_id = activity.experiment_id
        and spine.user_id = activity.user_id
        and spine.activity_date = activity.activity_date
        and activity.is_post
    left join pre_period
        on spine.experiment_id = pre_period.experiment_id
        and spine.user_id = pre_period.user_id

)

select * from final
