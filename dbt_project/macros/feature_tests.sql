{#- Fails on every row whose `column_name` lies outside [min_value, max_value] (nulls pass: not_null is separate). -#}
{% test between(model, column_name, min_value, max_value) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}
{% endtest %}

{#-
  A daily feature snapshot has one row per entity for every day from its first row to the newest day of the model:
  a gap would let Feast's point-in-time join serve an older day's values as if they were current.
-#}
{% test daily_rows_without_gaps(model, entity, date_column) %}
with per_entity as (
    select
        {{ entity }},
        min({{ date_column }}) as first_day,
        max({{ date_column }}) as last_day,
        count(*) as days
    from {{ model }}
    group by {{ entity }}
)
select per_entity.*
from per_entity
where days != {{ days_between('first_day', 'last_day') }} + 1
    or last_day != (select max({{ date_column }}) from {{ model }})
{% endtest %}

{#- Fails on rows whose list of shares is not empty and does not sum to 1 (within rounding). -#}
{% test shares_sum_to_one(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ array_size(column_name) }} > 0 and abs({{ array_sum(column_name) }} - 1) > 1e-9
{% endtest %}
