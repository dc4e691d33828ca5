{#-
  The few places where DuckDB and Spark need different SQL, each one dispatched macro (default__ is DuckDB's SQL,
  unchanged from before the Spark port, so the default engine runs the same statements; spark__ is Spark 4.x).
  Models call these instead of an engine's own functions (docs/scaling_out.md).
-#}

{#- A timestamp as text to the microsecond, `2026-01-31T23:59:59.123456` (session ids hash it). -#}
{% macro timestamp_text_us(expression) -%}
    {{ return(adapter.dispatch('timestamp_text_us')(expression)) }}
{%- endmacro %}

{% macro default__timestamp_text_us(expression) -%}
    strftime({{ expression }}, '%Y-%m-%dT%H:%M:%S.%f')
{%- endmacro %}

{% macro spark__timestamp_text_us(expression) -%}
    date_format({{ expression }}, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")
{%- endmacro %}


{#- Seconds from `start` to `end` (double, to the microsecond). dbt.datediff differs between the engines (DuckDB
    counts boundaries, Spark rounds), so both use the exact difference. -#}
{% macro seconds_between(start, end) -%}
    {{ return(adapter.dispatch('seconds_between')(start, end)) }}
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
    cast(epoch({{ end }} - {{ start }}) as double)
{%- endmacro %}

{% macro spark__seconds_between(start, end) -%}
    cast(unix_micros({{ end }}) - unix_micros({{ start }}) as double) / 1000000
{%- endmacro %}


{#- True when `later` is more than `minutes` after `earlier` (exact to the microsecond on both engines). -#}
{% macro gap_exceeds_minutes(earlier, later, minutes) -%}
    {{ return(adapter.dispatch('gap_exceeds_minutes')(earlier, later, minutes)) }}
{%- endmacro %}

{% macro default__gap_exceeds_minutes(earlier, later, minutes) -%}
    {{ later }} - {{ earlier }} > interval '{{ minutes }} minutes'
{%- endmacro %}

{% macro spark__gap_exceeds_minutes(earlier, later, minutes) -%}
    unix_micros({{ later }}) - unix_micros({{ earlier }}) > {{ minutes }} * 60000000
{%- endmacro %}


{#- Config of an incremental model that recomputes whole days (`day_column`) from a lookback start: DuckDB deletes
    and re-inserts those days; Spark's parquet tables (no merge without Delta/Iceberg) are partitioned by the day and
    the run overwrites the partitions it writes (spark.sql.sources.partitionOverwriteMode=dynamic in the profile).
    Use as `config(materialized='incremental', **incremental_by_day('event_date'))`. -#}
{% macro incremental_by_day(day_column) -%}
    {{ return(adapter.dispatch('incremental_by_day')(day_column)) }}
{%- endmacro %}

{% macro default__incremental_by_day(day_column) -%}
    {{ return({'incremental_strategy': 'delete+insert', 'unique_key': day_column}) }}
{%- endmacro %}

{% macro spark__incremental_by_day(day_column) -%}
    {{ return({'incremental_strategy': 'insert_overwrite', 'partition_by': [day_column], 'file_format': 'parquet'}) }}
{%- endmacro %}
