{#-
  First day an event-time incremental model recomputes: its newest day minus var('lookback_days'). On a full
  build, the beginning of time. Late events up to the lookback land in their own day on the next run; the
  `fct_events` completeness test warns when one arrives later than that.
-#}
{% macro lookback_start(date_column, extra_days=0) -%}
    {%- if is_incremental() -%}
    (select coalesce(max({{ date_column }}), date '1900-01-01') - {{ var('lookback_days') + extra_days }} from {{ this }})
    {%- else -%}
    date '1900-01-01'
    {%- endif -%}
{%- endmacro %}
