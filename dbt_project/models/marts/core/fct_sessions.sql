{#-
  One row per session: when it started and ended, how long it lasted, what happened in it.
  Recomputes sessions that started within the lookback (plus one day, for sessions crossing midnight).
-#}
{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        **incremental_by_day('session_date'),
    )
}}

with events as (

    select * from {{ ref('fct_events') }}
    where session_start >= {{ lookback_start('session_date', 'last_ingested_at', ref('fct_events'),
                                             'cast(session_start as date)', 'ingested_at', extra_days=1) }}

),

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

final as (

    select
        events.session_id,
        events.user_id,
        events.session_start,
        max(events.occurred_at) as session_end,
        cast(events.session_start as date) as session_date,
        {{ seconds_between('events.session_start', 'max(events.occurred_at)') }} as duration_seconds,
        count(*) as events,
        count(*) filter (where events.event_type = 'impression') as impressions,
        count(*) filter (where events.event_type = 'click') as clicks,
        count(*) filter (where events.event_type = 'view') as views,
        count(*) filter (where events.event_type = 'conversion') as conversions,
        {{ exact_sum('events.dwell_seconds') }} as dwell_seconds,
        {{ exact_sum('events.value * fx_rates.usd_per_unit') }} as revenue_usd,
        max(events.ingested_at) as last_ingested_at
    from events
    left join fx_rates on events.currency = fx_rates.currency
    group by events.session_id, events.user_id, events.session_start

)

select * from final
