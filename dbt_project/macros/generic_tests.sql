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

{#-
  A fact fixed when the entity began (a user's signup time, an item's publication time) has one value across all
  of the entity's versions. Lists each key whose versions disagree, with the first and last value. A new profile
  version may change what can change (plan, country, category); one that moves the signup is most likely another
  system's or another simulated history's row under a key already used (found by a new-user trial: `tailor ingest`
  of another seed's files added the other world's users as new versions without a word). Warn severity: the
  versions are kept, as delivered, and the check says where to look.
-#}
{% test unchanging_across_versions(model, column_name, key) %}
select
    {{ key }},
    count(distinct {{ column_name }}) as distinct_values,
    min({{ column_name }}) as first_value,
    max({{ column_name }}) as last_value
from {{ model }}
group by {{ key }}
having count(distinct {{ column_name }}) > 1
{% endtest %}

{#-
  Referential integrity, one row per event: each event whose `column_name` is set but not among `to`'s `field`
  values, with its event_id. dbt's `relationships` test finds the same rows but returns only the value; the event_id
  lets `tailor run` trace each row to the landed batch and line it came from (orchestration/lib/dbt_failures.py).
  Used at warn severity: an event may arrive before its user's profile or its item's catalog row.
-#}
{% test known_in(model, column_name, to, field) %}
select child.event_id, child.{{ column_name }}
from {{ model }} as child
left join (select distinct {{ field }} as known from {{ to }}) as parent on child.{{ column_name }} = parent.known
where child.{{ column_name }} is not null and parent.known is null
{% endtest %}
