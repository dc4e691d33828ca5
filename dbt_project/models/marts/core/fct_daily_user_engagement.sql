{#- One row per user and active day (UTC, event time): what they saw, clicked, read and bought. -#}
{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        **incremental_by_day('activity_date'),
    )
}}

with events as (

    select * from {{ ref('fct_events') }}
    where event_date >= {{ lookback_start('activity_date', 'last_ingested_at', ref('fct_events'), 'event_date',
                                          'ingested_at') }}

),

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

final as (

    select
        events.user_id,
        events.event_date as activity_date,
        count(distinct events.session_id) as sessions,
        count(*) filter (where events.event_type = 'impression') as impressions,
        count(*) filter (where events.event_type = 'click') as clicks,
        count(*) filter (where events.event_type = 'view') as views,
        {{ exact_sum('events.dwell_seconds') }} as dwell_seconds,
        count(*) filter (where events.event_type = 'conversion') as conversions,
        {{ exact_sum('events.value * fx_rates.usd_per_unit') }} as revenue_usd,
        min(events.occurred_at) as first_event_at,
        max(events.occurred_at) as last_event_at,
        max(events.ingested_at) as last_ingested_at
    from events
    left join fx_rates on events.currency = fx_rates.currency
    group by events.user_id, events.event_date

)

select * from final
