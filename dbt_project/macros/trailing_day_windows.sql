{#-
  Named windows last_<w>d over one row per entity and day: the trailing w days, the day itself included. The daily
  feature marts sum over them (rows, not range: their grid has a row for every day, active or not).
-#}
{% macro trailing_day_windows(entity_key, windows, order_by='feature_date') -%}
    {%- for w in windows %}
        last_{{ w }}d as (partition by {{ entity_key }} order by {{ order_by }} rows between {{ w - 1 }} preceding and current row)
        {{- "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
