{#- Fails on every combination of `columns` that occurs more than once (dbt_utils is not reachable offline). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#-
  Every accepted event in staging reached fct_events: the incremental window (lookback + days touched by new
  rows) must never leave one out. A failure means an event was lost between staging and the marts.
-#}
{% test accepted_events_are_all_present(model) %}
select staged.event_id
from {{ ref('stg_landing__events') }} as staged
{{ anti_join() }} {{ model }} as modelled on staged.event_id = modelled.event_id
where staged.fate = 'accepted'
{% endtest %}
