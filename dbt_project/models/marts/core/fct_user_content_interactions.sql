{#-
  One row per user and item they consumed (clicked or viewed): when first and last, how often, how long.

  What the candidate generators learn from (the user x item matrix) and what recommendations must never repeat
  ("already consumed"). Small (distinct pairs, not events), so it is rebuilt whole from fct_events each run.
-#}
with events as (

    select * from {{ ref('fct_events') }}
    where event_type in ('click', 'view')

),

final as (

    select
        user_id,
        content_id,
        min(occurred_at) as first_consumed_at,
        max(occurred_at) as last_consumed_at,
        min(occurred_at) filter (where event_type = 'click') as first_clicked_at,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'view') as views,
        {{ exact_sum('dwell_seconds') }} as dwell_seconds
    from events
    group by user_id, content_id

)

select * from final
