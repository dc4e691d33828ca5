{#-
  One row per impression with its click label: the ranking model's training spine.

  An impression is clicked when the same user clicked the same content from the same request (click events carry
  the impression's request_id). Clicks come after their impression, so they are read from the same window.
-#}
{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        **incremental_by_day('event_date'),
    )
}}

with events as (

    select * from {{ ref('fct_events') }}
    -- A late click relabels an impression up to a day earlier (clicks after midnight), hence extra_days=1.
    where event_date >= {{ lookback_start('event_date', 'last_ingested_at', ref('fct_events'), 'event_date',
                                          'ingested_at', extra_days=1) }}

),

impressions as (

    select * from events where event_type = 'impression'

),

clicks as (

    select
        user_id,
        request_id,
        content_id,
        min(occurred_at) as clicked_at,
        count(*) as clicks,
        max(ingested_at) as last_ingested_at
    from events
    where event_type = 'click'
    group by user_id, request_id, content_id

),

final as (

    select
        impressions.event_id as impression_id,
        impressions.request_id,
        impressions.user_id,
        impressions.content_id,
        impressions.session_id,
        impressions.surface,
        impressions.position,
        impressions.occurred_at,
        impressions.event_date,
        clicks.clicked_at is not null as is_clicked,
        clicks.clicked_at,
        coalesce(clicks.clicks, 0) as clicks,
        greatest(impressions.ingested_at, clicks.last_ingested_at) as last_ingested_at,
        impressions.policy,
        impressions.model_version,
        impressions.propensity
    from impressions
    left join clicks
        on impressions.user_id = clicks.user_id
        and impressions.request_id = clicks.request_id
        and impressions.content_id = clicks.content_id

)

select * from final
