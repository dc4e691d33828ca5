{#-
  Days in a row with no event at all inside the history, more than `max_gap_days` of them. The rows are not wrong,
  but a gap is worth a word: most often it is one event far from the rest (a trial POSTed an event dated today into
  a simulated history that ended ten months earlier) or the platform back after an outage. Every daily mart spans
  it, a user's and an item's features written for each day of it (the trial's home: content feature rows 16,637 ->
  591,358), the online store then holds features as of the newest day (the 1/7/28-day counts of a user not seen
  for months are zero), and the model side's windows reach over it to the days with data (docs/decisions.md,
  "Windows count days with data"). This warns, naming an event of the quieter of the two days beside each gap (the
  one an accident makes: a lone event dated today after the history, or one dated years before it) with its landed
  batch and line, so an accident can be found and a real outage recognised.
-#}
{{ config(severity='warn') }}

with days as (

    select event_date, min(event_id) as event_id, count(*) as events
    from {{ ref('fct_events') }}
    group by event_date

),

ordered as (

    select
        event_date,
        event_id,
        events,
        lag(event_date) over (order by event_date) as previous_date,
        lag(event_id) over (order by event_date) as previous_event_id,
        lag(events) over (order by event_date) as previous_events
    from days

)

select
    case when previous_events < events then previous_event_id else event_id end as event_id,
    previous_date as last_day_before_the_gap,
    event_date as first_day_after_the_gap,
    {{ dbt.datediff('previous_date', 'event_date', 'day') }} - 1 as days_without_events
from ordered
where {{ dbt.datediff('previous_date', 'event_date', 'day') }} - 1 > {{ var('max_gap_days') }}
