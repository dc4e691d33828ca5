{#-
  Platform-wide click-through rate per day over trailing 1, 7 and 28 days: the prior that user and content CTR
  features are smoothed toward. Computed as of each day from that day's and earlier events only.
-#}
{%- set windows = [1, 7, 28] -%}

with engagement as (

    select * from {{ ref('fct_daily_user_engagement') }}

),

per_day as (

    select
        activity_date,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from engagement
    group by activity_date

),

-- Every day between the first and the last, so that row-based windows count calendar days.
days as (

    select {{ day_series('min(activity_date)', 'max(activity_date)') }} as day
    from per_day

),

daily as (

    select
        days.day as activity_date,
        coalesce(per_day.impressions, 0) as impressions,
        coalesce(per_day.clicks, 0) as clicks
    from days
    left join per_day on days.day = per_day.activity_date

),

final as (

    select
        activity_date,
        {%- for w in windows %}
        -- Clicks beyond impressions (orphan or repeated clicks) cannot make a rate above 1.
        least(sum(clicks) over last_{{ w }}d / nullif(sum(impressions) over last_{{ w }}d, 0), 1.0) as ctr_{{ w }}d{{ "," if not loop.last }}
        {%- endfor %}
    from daily
    window
        {%- for w in windows %}
        last_{{ w }}d as (order by activity_date rows between {{ w - 1 }} preceding and current row){{ "," if not loop.last }}
        {%- endfor %}

)

select * from final
