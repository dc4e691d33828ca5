{#-
  The recent-activity window of every user at every moment it changes: when an event happens (it enters) and 30
  minutes later (it leaves). The batch source of Feast's recent_activity view, whose online rows the stream
  consumer (`tailor stream consume`) pushes with the same definition (tailor/stream/window.py):
  - a row as of t counts the user's events with t - 30 minutes < event time <= t;
  - event time is occurred_at, but never later than received_at (a client clock running ahead must not keep an
    event in the window longer);
  - clicked categories are each category once, most recent click first (ties: larger event_id first), with the
    category the content had at the time of the click; clicked items are each content id once, in the same order
    (the service leaves them off the user's next pages: a click seconds ago is not recommended again).
  A point-in-time join as of any moment (Feast's TTL on the view is the same 30 minutes) then finds exactly the
  window's value.

  Incremental like the event marts, by the UTC day of the moment. Each run rewrites the days from lookback_start
  on, with one extra day (an event time clamped to received_at can fall on the day before occurred_at's: the
  contract tolerates 24 hours of skew), and reads one more day that it does not rewrite (the first windows of a
  day reach 30 minutes into the day before).
-#}
{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        **incremental_by_day('event_date'),
    )
}}

{%- set window_minutes = 30 -%}
{%- set recompute = lookback_start('event_date', 'last_ingested_at', ref('fct_events'), 'event_date', 'ingested_at',
                                   extra_days=1) -%}

with bounds as (

    select {{ recompute }} as recompute_from

),

events as (

    select
        event_id,
        user_id,
        event_type,
        least(occurred_at, coalesce(received_at, occurred_at)) as event_time,
        content_id,
        dwell_seconds,
        ingested_at
    from {{ ref('fct_events') }}
    where event_type in ('impression', 'click', 'view', 'conversion')
        and event_date >= (select recompute_from - 1 from bounds)

),

content_versions as (

    select * from {{ ref('dim_content_history') }}

),

activity as (

    select
        events.*,
        content_versions.category
    from events
    left join content_versions
        on events.event_type = 'click'
        and events.content_id = content_versions.content_id
        and events.event_time >= content_versions.valid_from
        and (events.event_time < content_versions.valid_to or content_versions.valid_to is null)

),

-- Each event adds to its window when it happens and subtracts 30 minutes later; a running sum of these changes is
-- the window's value at every moment. Dwell is summed as a decimal, so it returns exactly to 0 (see exact_sum).
changes as (

    select user_id, event_time as moment_at, 1 as direction, event_type, dwell_seconds, ingested_at
    from activity
    union all
    select
        user_id, event_time + interval {{ window_minutes }} minute as moment_at, -1, event_type, dwell_seconds, ingested_at
    from activity

),

changes_per_moment as (

    select
        user_id,
        moment_at,
        coalesce(sum(direction) filter (where event_type = 'impression'), 0) as impressions,
        coalesce(sum(direction) filter (where event_type = 'click'), 0) as clicks,
        coalesce(sum(direction) filter (where event_type = 'view'), 0) as views,
        coalesce(sum(direction) filter (where event_type = 'conversion'), 0) as conversions,
        coalesce(
            sum(direction * cast(dwell_seconds as decimal(38, 6))) filter (where event_type = 'view'), 0
        ) as dwell_seconds,
        max(ingested_at) as ingested_at
    from changes
    group by user_id, moment_at

),

counts as (

    select
        user_id,
        moment_at,
        sum(impressions) over running as impressions_30m,
        sum(clicks) over running as clicks_30m,
        sum(views) over running as views_30m,
        sum(conversions) over running as conversions_30m,
        sum(dwell_seconds) over running as dwell_seconds_30m,
        -- Newest landing among the changes inside this window (not all history: an incremental run reads only a
        -- recent slice, and must reproduce a full build).
        max(ingested_at) over recent_changes as last_ingested_at
    from changes_per_moment
    window
        running as (partition by user_id order by moment_at rows unbounded preceding),
        recent_changes as (
            partition by user_id
            order by moment_at
            range between interval {{ window_minutes }} minute preceding and current row
        )

),

-- Clicked categories and items change only when a click enters or leaves the window: a window over the clicks
-- alone (a few percent of the events), joined back as of every moment. A click on an item the catalog does not know
-- (no category) counts as a click but is in neither list, as in the stream consumer.
clicks as (

    select user_id, event_time as moment_at, event_id, event_time, category, content_id
    from activity
    where event_type = 'click' and category is not null
    union all
    select user_id, event_time + interval {{ window_minutes }} minute as moment_at, null, null, null, null
    from activity
    where event_type = 'click' and category is not null

),

click_windows as (

    select
        user_id,
        moment_at,
        {{ struct_array_agg(['event_time', 'event_id', 'category', 'content_id']) }}
            filter (where event_id is not null) over recent as window_clicks
    from clicks
    -- The frame is (moment_at - 30 minutes, moment_at]: RANGE bounds are inclusive, so stop a microsecond short.
    window recent as (
        partition by user_id
        order by moment_at
        range between interval {{ window_minutes * 60 * 1000000 - 1 }} microsecond preceding and current row
    )
    -- Rows at the same moment see the same frame: keep one.
    qualify row_number() over (partition by user_id, moment_at order by event_id nulls last) = 1

),

click_lists as (

    select
        user_id,
        moment_at,
        -- Most recent click first; ties in time by larger event_id first, as the stream consumer orders them.
        {{ field_by_descending_struct('window_clicks', 'category') }} as by_recency,
        {{ field_by_descending_struct('window_clicks', 'content_id') }} as items_by_recency
    from click_windows

),

-- Each moment's click lists: those of the latest click window at or before it (every click window's moment is also
-- a moment of counts: both come from the same events).
counts_with_categories as (

    {{ asof_left_join_select('counts', 'counts', 'click_lists', 'click_lists', 'user_id', 'moment_at',
                             ['by_recency', 'items_by_recency']) }}

),

final as (

    select
        counts.user_id,
        counts.moment_at as event_timestamp,
        cast(counts.moment_at as date) as event_date,
        cast(counts.impressions_30m as bigint) as impressions_30m,
        cast(counts.clicks_30m as bigint) as clicks_30m,
        cast(counts.views_30m as bigint) as views_30m,
        cast(counts.conversions_30m as bigint) as conversions_30m,
        cast(counts.dwell_seconds_30m as double) as dwell_seconds_30m,
        coalesce({{ distinct_in_order('counts.by_recency') }}, {{ empty_array('varchar') }}) as clicked_categories_30m,
        {{ array_first('counts.by_recency') }} as last_clicked_category,
        coalesce(
            {{ distinct_in_order('counts.items_by_recency') }}, {{ empty_array('varchar') }}
        ) as clicked_items_30m,
        counts.last_ingested_at
    from counts_with_categories as counts
    where counts.moment_at >= (select recompute_from from bounds)

)

select * from final
