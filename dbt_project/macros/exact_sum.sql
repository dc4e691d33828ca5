{#-
  Sum a double exactly: as a decimal, then back to double. A plain sum of doubles depends on the order rows
  arrive in (parallel aggregation), so re-running the same day could change the last digits of a total.
-#}
{% macro exact_sum(expression, scale=4, precision=18) -%}
    cast(coalesce(sum(cast({{ expression }} as decimal({{ precision }}, {{ scale }}))), 0) as double)
{%- endmacro %}
