{#-
  Accepted events (each event_id once) in event time, each with its session.

  Sessions: a user's events separated by more than var('session_gap_minutes') of inactivity start a new session;
  session_id is derived from the user and the session's first event, so it is stable across runs. Incremental by
  event day with a lookback: each run recomputes the newest days, reading one extra day of context so a session
  that crosses midnight keeps its start.
-#}
{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        **incremental_by_day('event_date'),
    )
}}

{%- set recompute = lookback_start(
    'event_date', 'ingested_at', ref('stg_landing__events'), 'event_date', 'ingested_at',
    changes_filter="fate = 'accepted'") -%}
{%- set recompute_with_context = lookback_start(
    'event_date', 'ingested_at', ref('stg_landing__events'), 'event_date', 'ingested_at',
    extra_days=1, changes_filter="fate = 'accepted'") -%}

with accepted as (

    select
        event_id,
        event_type,
        user_id,
        occurred_at,
        received_at,
        ingested_at,
        event_date,
        content_id,
        position,
        surface,
        request_id,
        dwell_seconds,
        value,
        currency,
        experiment_id,
        variant,
        policy,
        model_version,
        propensity
    from {{ ref('stg_landing__events') }}
    where fate = 'accepted'
        and event_date >= {{ recompute_with_context }}

),

gaps as (

    select
        *,
        case
            when lag(occurred_at) over by_user is null then 1
            when {{ gap_exceeds_minutes('lag(occurred_at) over by_user', 'occurred_at',
                                        var('session_gap_minutes')) }} then 1
            else 0
        end as starts_session
    from accepted
    window by_user as (partition by user_id order by occurred_at, event_id)

),

sessionized as (

    -- The running max of session-start times is the current session's start (events are in time order):
    -- same window as the running count, so one sort serves both.
    select
        *,
        max(case when starts_session = 1 then occurred_at end) over by_user_so_far as session_start
    from gaps
    window by_user_so_far as (partition by user_id order by occurred_at, event_id rows unbounded preceding)

),

final as (

    select
        event_id,
        event_type,
        user_id,
        occurred_at,
        received_at,
        ingested_at,
        event_date,
        md5(user_id || '|' || {{ timestamp_text_us('session_start') }}) as session_id,
        session_start,
        content_id,
        position,
        surface,
        request_id,
        dwell_seconds,
        value,
        currency,
        experiment_id,
        variant,
        policy,
        model_version,
        propensity
    from sessionized
    where event_date >= {{ recompute }}

)

select * from final
