{#-
  One row per user and day, from the user's first active day to the newest complete day (a day in progress has no rows
  yet: macros/newest_complete_day.sql): what the user did over the trailing 1, 7 and 28 days as of the end of that day
  (event_timestamp = next midnight, UTC), for Feast's point-in-time joins. Inactive days have rows too, so a window
  slides to zero instead of repeating stale values.

  Incremental like the event marts: each run recomputes from lookback_start (newest day minus the lookback, or the
  earliest day that received new rows), reading 27 more days of context for the 28-day windows. A row's
  last_ingested_at is the newest landing time among the engagement rows in its 28-day window, so a full rebuild gives
  the same rows as the daily runs did.
-#}
{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        **incremental_by_day('feature_date'),
    )
}}

{%- set windows = [1, 7, 28] -%}
{%- set recompute = lookback_start('feature_date', 'last_ingested_at', ref('fct_daily_user_engagement'),
                                   'activity_date', 'last_ingested_at') -%}

with engagement as (

    select * from {{ ref('fct_daily_user_engagement') }}

),

bounds as (

    select
        {{ recompute }} as recompute_from,
        {{ recompute }} - {{ windows | max - 1 }} as context_from,
        -- The day in progress has no features yet: a day's values are as of its end (macros/newest_complete_day.sql).
        {{ newest_complete_day('activity_date', 'last_event_at') }} as last_day
    from engagement

),

users as (

    select
        user_id,
        min(activity_date) as first_day
    from engagement
    group by user_id

),

-- The last visit before the context window: days_since_last_visit can be older than any window we read.
earlier_visits as (

    select
        engagement.user_id,
        max(engagement.activity_date) as last_visit
    from engagement
    cross join bounds
    where engagement.activity_date < bounds.context_from
    group by engagement.user_id

),

days as (

    select {{ day_series('greatest(min(first_day), any_value(bounds.context_from))', 'any_value(bounds.last_day)') }}
        as day
    from users
    cross join bounds

),

sessions as (

    select
        user_id,
        session_date,
        count(*) as sessions,
        -- Exact sums (see exact_sum): a rebuild must reproduce every bit.
        {{ exact_sum('duration_seconds') }} as session_seconds
    from {{ ref('fct_sessions') }}
    where session_date >= (select context_from from bounds)
    group by user_id, session_date

),

-- Clicks by the category the content had when it was clicked (a later relabel does not rewrite the past).
category_clicks as (

    select
        events.user_id,
        events.event_date,
        versions.category,
        count(*) as clicks
    from {{ ref('fct_events') }} as events
    inner join {{ ref('dim_content_history') }} as versions
        on events.content_id = versions.content_id
        and events.occurred_at >= versions.valid_from
        and (events.occurred_at < versions.valid_to or versions.valid_to is null)
    where events.event_type = 'click'
        and events.event_date >= (select context_from from bounds)
        and versions.category is not null
    group by events.user_id, events.event_date, versions.category

),

grid as (

    select
        users.user_id,
        days.day as feature_date,
        engagement.user_id is not null as is_active,
        coalesce(engagement.impressions, 0) as impressions,
        coalesce(engagement.clicks, 0) as clicks,
        coalesce(engagement.dwell_seconds, 0) as dwell_seconds,
        coalesce(engagement.conversions, 0) as conversions,
        coalesce(sessions.sessions, 0) as sessions,
        coalesce(sessions.session_seconds, 0) as session_seconds,
        engagement.last_ingested_at
    from users
    inner join days on days.day >= users.first_day
    left join engagement on users.user_id = engagement.user_id and days.day = engagement.activity_date
    left join sessions on users.user_id = sessions.user_id and days.day = sessions.session_date

),

rolling as (

    select
        user_id,
        feature_date,
        max(case when is_active then feature_date end) over (
            partition by user_id order by feature_date rows unbounded preceding
        ) as last_visit_in_context,
        max(last_ingested_at) over last_{{ windows | max }}d as last_ingested_at,
        {%- for w in windows %}
        sum(impressions) over last_{{ w }}d as impressions_{{ w }}d,
        sum(clicks) over last_{{ w }}d as clicks_{{ w }}d,
        sum(sessions) over last_{{ w }}d as sessions_{{ w }}d,
        cast(sum(cast(session_seconds as decimal(18, 4))) over last_{{ w }}d as double) as session_seconds_{{ w }}d,
        cast(sum(cast(dwell_seconds as decimal(18, 4))) over last_{{ w }}d as double) as dwell_seconds_{{ w }}d,
        sum(conversions) over last_{{ w }}d as conversions_{{ w }}d{{ "," if not loop.last }}
        {%- endfor %}
    from grid
    window {{ trailing_day_windows('user_id', windows) }}

),

affinity_counts as (

    select
        grid.user_id,
        grid.feature_date,
        category_clicks.category,
        sum(category_clicks.clicks) as clicks
    from grid
    inner join category_clicks
        on grid.user_id = category_clicks.user_id
        and category_clicks.event_date between grid.feature_date - {{ windows | max - 1 }} and grid.feature_date
    where grid.feature_date >= (select recompute_from from bounds)
    group by grid.user_id, grid.feature_date, category_clicks.category

),

affinity_shares as (

    select
        *,
        cast(clicks / sum(clicks) over (partition by user_id, feature_date) as double) as share
    from affinity_counts

),

-- Categories ordered by share (ties by name), so the two lists line up and read most-liked first.
affinity as (

    select
        user_id,
        feature_date,
        {{ ordered_array_agg('category', ['share desc', 'category']) }} as affinity_categories,
        {{ ordered_array_agg('share', ['share desc', 'category']) }} as affinity_shares
    from affinity_shares
    group by user_id, feature_date

),

final as (

    select
        rolling.user_id,
        rolling.feature_date,
        -- With a zone, so that no reader can take it for local time (Feast compares it with impression times).
        {{ utc_instant('cast(rolling.feature_date + interval 1 day as timestamp)') }} as event_timestamp,
        {%- for w in windows %}
        cast(rolling.impressions_{{ w }}d as bigint) as impressions_{{ w }}d,
        cast(rolling.clicks_{{ w }}d as bigint) as clicks_{{ w }}d,
        cast({{ smoothed_rate('rolling.clicks_' ~ w ~ 'd', 'rolling.impressions_' ~ w ~ 'd', 'prior.ctr_' ~ w ~ 'd') }}
            as double) as ctr_smoothed_{{ w }}d,
        cast(rolling.sessions_{{ w }}d as bigint) as sessions_{{ w }}d,
        cast(rolling.session_seconds_{{ w }}d / nullif(rolling.sessions_{{ w }}d, 0) as double)
            as mean_session_seconds_{{ w }}d,
        cast(rolling.dwell_seconds_{{ w }}d as double) as dwell_seconds_{{ w }}d,
        cast(rolling.conversions_{{ w }}d as bigint) as conversions_{{ w }}d,
        {%- endfor %}
        cast(
            {{ days_between('coalesce(rolling.last_visit_in_context, earlier_visits.last_visit)', 'rolling.feature_date') }}
                as bigint
        ) as days_since_last_visit,
        coalesce(affinity.affinity_categories, {{ empty_array('varchar') }}) as affinity_categories,
        coalesce(affinity.affinity_shares, {{ empty_array('double') }}) as affinity_shares,
        rolling.last_ingested_at
    from rolling
    cross join bounds
    left join earlier_visits on rolling.user_id = earlier_visits.user_id
    left join affinity on rolling.user_id = affinity.user_id and rolling.feature_date = affinity.feature_date
    left join {{ ref('int_global_ctr_daily') }} as prior on rolling.feature_date = prior.activity_date
    where rolling.feature_date >= bounds.recompute_from

)

select * from final
