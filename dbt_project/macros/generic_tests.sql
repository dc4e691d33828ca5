{#- Fails on every combination of `columns` that occurs more than once (dbt_utils is not reachable offline). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#-
  Every accepted event in staging reached fct_events. It fails (as a warning) only when an event arrived later
  than the lookback window: raise var('lookback_days') or run a full refresh of the event-time models.
-#}
{% test accepted_events_are_all_present(model) %}
select staged.event_id
from {{ ref('stg_landing__events') }} as staged
anti join {{ model }} as modelled on staged.event_id = modelled.event_id
where staged.fate = 'accepted'
{% endtest %}
