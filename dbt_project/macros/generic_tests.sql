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
