{#-
  One row per catalog item and day, from the day it was published or first named by an event, whichever is earlier
  (the first day of history, for the back catalog), to the newest complete day (as fct_user_features_daily): its
  category and format as of the end of that day, its age, and its impressions, clicks and smoothed CTR over the
  trailing 1, 7 and 28 days, with its popularity rank that day. event_timestamp = the next midnight (UTC), the time
  the values are as of. Counters carry a content_ prefix: a feature service joins them with the user's and Feast needs
  feature names unique across it. Incremental as fct_user_features_daily, keyed on the impression and click events
  (last_ingested_at: newest landing time among them in the 28-day window).
-#}
{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        **incremental_by_day('feature_date'),
    )
}}

{%- set windows = [1, 7, 28] -%}
{%- set recompute = lookback_start('feature_date', 'last_ingested_at', ref('fct_events'), 'event_date', 'ingested_at',
                                   changes_filter="event_type in ('impression', 'click')") -%}

with engagement as (

    select * from {{ ref('fct_daily_user_engagement') }}

),

versions as (

    select * from {{ ref('dim_content_history') }}

),

bounds as (

    select
        {{ recompute }} as recompute_from,
        {{ recompute }} - {{ windows | max - 1 }} as context_from,
        min(activity_date) as first_day,
        -- The day in progress has no features yet: a day's values are as of its end (macros/newest_complete_day.sql).
        {{ newest_complete_day('activity_date', 'last_event_at') }} as last_day
    from engagement

),

activity as (

    select
        content_id,
        event_date,
        count(*) filter (where event_type = 'impression') as impressions,
        count(*) filter (where event_type = 'click') as clicks,
        max(ingested_at) as last_ingested_at
    from {{ ref('fct_events') }}
    where event_type in ('impression', 'click')
        and content_id is not null
        and event_date >= (select context_from from bounds)
    group by content_id, event_date

),

-- Every item from its first day: the day it was published (its first catalog record, for the back catalog) or
-- the day events first named it, whichever is earlier (events can name an item before its catalog record arrives;
-- its category is unknown until then). An incremental run reads 28 days of events only, so the items it already
-- holds keep their first day from the table itself: an item nobody saw lately keeps its daily rows (zeros).
items as (

    select content_id, min(first_day) as first_day
    from (
        select content_id, cast(min(coalesce(published_at, valid_from)) as date) as first_day
        from versions
        group by content_id

        union all

        select content_id, min(event_date) as first_day
        from activity
        group by content_id
        {%- if is_incremental() %}

        union all

        select content_id, min(feature_date) as first_day
        from {{ this }}
        group by content_id
        {%- endif %}
    )
    group by content_id

),

days as (

    select {{ day_series('greatest(any_value(first_day), any_value(context_from))', 'any_value(last_day)') }} as day
    from bounds

),

grid as (

    select
        items.content_id,
        days.day as feature_date,
        coalesce(activity.impressions, 0) as impressions,
        coalesce(activity.clicks, 0) as clicks,
        activity.last_ingested_at
    from items
    inner join days on days.day >= items.first_day
    left join activity on items.content_id = activity.content_id and days.day = activity.event_date

),

rolling as (

    select
        content_id,
        feature_date,
        {%- for w in windows %}
        sum(impressions) over last_{{ w }}d as impressions_{{ w }}d,
        sum(clicks) over last_{{ w }}d as clicks_{{ w }}d,
        {%- endfor %}
        max(last_ingested_at) over last_{{ windows | max }}d as last_ingested_at
    from grid
    window {{ trailing_day_windows('content_id', windows) }}

),

recomputed as (

    select
        rolling.*,
        cast(rolling.feature_date + interval 1 day as timestamp) as as_of
    from rolling
    where rolling.feature_date >= (select recompute_from from bounds)

),

-- The catalog record valid at the end of the day (a relabel later that day already counts).
as_of_day as (

    select
        recomputed.content_id,
        recomputed.feature_date,
        versions.category,
        versions.format,
        versions.published_at
    from recomputed
    inner join versions
        on recomputed.content_id = versions.content_id
        and versions.valid_from < recomputed.as_of
        and (versions.valid_to >= recomputed.as_of or versions.valid_to is null)

),

final as (

    select
        recomputed.content_id,
        recomputed.feature_date,
        -- With a zone, so that no reader can take these for local time (Feast compares them with request times).
        {{ utc_instant('recomputed.as_of') }} as event_timestamp,
        as_of_day.category,
        as_of_day.format,
        -- Whole seconds: Feast's online store keeps timestamps in seconds, and training must see what serving sees.
        {{ utc_instant("date_trunc('second', as_of_day.published_at)") }} as published_at,
        cast({{ seconds_between('as_of_day.published_at', 'recomputed.as_of') }} / 86400 as double) as age_days,
        {%- for w in windows %}
        cast(recomputed.impressions_{{ w }}d as bigint) as content_impressions_{{ w }}d,
        cast(recomputed.clicks_{{ w }}d as bigint) as content_clicks_{{ w }}d,
        cast({{ smoothed_rate('recomputed.clicks_' ~ w ~ 'd', 'recomputed.impressions_' ~ w ~ 'd',
                              'prior.ctr_' ~ w ~ 'd') }} as double) as content_ctr_smoothed_{{ w }}d,
        {%- endfor %}
        cast(rank() over (
            partition by recomputed.feature_date
            order by recomputed.clicks_7d desc, recomputed.impressions_7d desc
        ) as bigint) as popularity_rank_7d,
        recomputed.last_ingested_at
    from recomputed
    left join as_of_day
        on recomputed.content_id = as_of_day.content_id and recomputed.feature_date = as_of_day.feature_date
    left join {{ ref('int_global_ctr_daily') }} as prior on recomputed.feature_date = prior.activity_date

)

select * from final
