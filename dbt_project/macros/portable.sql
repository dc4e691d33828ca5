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


{#- The first date an incremental model's full build starts from (lookback_start). Spark's calendar cannot go
    before year 1, and the feature marts read 27 days of context before it: Spark starts from year 2. -#}
{% macro beginning_of_time() -%}
    {{ return(adapter.dispatch('beginning_of_time')()) }}
{%- endmacro %}

{% macro default__beginning_of_time() -%}
    date '0001-01-01'
{%- endmacro %}

{% macro spark__beginning_of_time() -%}
    date '0002-01-01'
{%- endmacro %}


{#- One row per calendar day from `start_date` to `end_date` (dates, both included): a set-returning select-list
    expression, `select {{ day_series('a', 'b') }} as day from ...`. -#}
{% macro day_series(start_date, end_date) -%}
    {{ return(adapter.dispatch('day_series')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__day_series(start_date, end_date) -%}
    cast(unnest(generate_series({{ start_date }}, {{ end_date }}, interval 1 day)) as date)
{%- endmacro %}

{% macro spark__day_series(start_date, end_date) -%}
    explode(sequence({{ start_date }}, {{ end_date }}, interval 1 day))
{%- endmacro %}


{#- Whole days from date `start` to date `end` (an integer). -#}
{% macro days_between(start, end) -%}
    {{ return(adapter.dispatch('days_between')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
    {{ end }} - {{ start }}
{%- endmacro %}

{% macro spark__days_between(start, end) -%}
    datediff({{ end }}, {{ start }})
{%- endmacro %}


{#- A UTC wall-clock timestamp as an instant: DuckDB's TIMESTAMPTZ (so no reader takes it for local time), Spark's
    TIMESTAMP (already an instant; the session is in UTC). -#}
{% macro utc_instant(expression) -%}
    {{ return(adapter.dispatch('utc_instant')(expression)) }}
{%- endmacro %}

{% macro default__utc_instant(expression) -%}
    timezone('UTC', {{ expression }})
{%- endmacro %}

{% macro spark__utc_instant(expression) -%}
    {{ expression }}
{%- endmacro %}


{#- The value of the row with the smallest (`keys`, in order): e.g. arg_min('variant', ['occurred_at', 'variant']). -#}
{% macro arg_min(value, keys) -%}
    {{ return(adapter.dispatch('arg_min')(value, keys)) }}
{%- endmacro %}

{% macro default__arg_min(value, keys) -%}
    arg_min({{ value }}, ({{ keys | join(', ') }}))
{%- endmacro %}

{% macro spark__arg_min(value, keys) -%}
    min_by({{ value }}, struct({{ keys | join(', ') }}))
{%- endmacro %}


{#- The keyword of an anti join (rows of the left side without a match on the right). -#}
{% macro anti_join() -%}
    {{ return(adapter.dispatch('anti_join')()) }}
{%- endmacro %}

{% macro default__anti_join() -%}
    anti join
{%- endmacro %}

{% macro spark__anti_join() -%}
    left anti join
{%- endmacro %}


{#- Types as the contracts spell them (DuckDB's names: varchar, X[], timestamp with time zone) in Spark's words. One
    spelling in the YAML serves both engines: dbt checks a contract by casting null to each declared type on the
    engine (get_empty_schema_sql below), so on Spark the names are translated first. -#}
{% macro spark_type(data_type) -%}
    {%- set name = data_type | trim | lower -%}
    {%- if name.endswith('[]') -%}
        array<{{ spark_type(name[:-2]) }}>
    {%- elif name in ('varchar', 'text') -%}
        string
    {%- elif name in ('timestamp with time zone', 'timestamptz') -%}
        timestamp
    {%- else -%}
        {{ name }}
    {%- endif -%}
{%- endmacro %}

{% macro spark__get_empty_schema_sql(columns) -%}
    {%- set translated = {} -%}
    {%- for name, column in columns.items() -%}
        {%- set copy = column.copy() if column is mapping else column -%}
        {%- if column is mapping and column.get('data_type') -%}
            {%- do copy.update({'data_type': spark_type(column['data_type'])}) -%}
        {%- endif -%}
        {%- do translated.update({name: copy}) -%}
    {%- endfor -%}
    {{ return(default__get_empty_schema_sql(translated)) }}
{%- endmacro %}


{#- An empty array of `element_type` (DuckDB's name of the type, as in the contracts). -#}
{% macro empty_array(element_type) -%}
    {{ return(adapter.dispatch('empty_array')(element_type)) }}
{%- endmacro %}

{% macro default__empty_array(element_type) -%}
    []::{{ element_type }}[]
{%- endmacro %}

{% macro spark__empty_array(element_type) -%}
    cast(array() as array<{{ spark_type(element_type) }}>)
{%- endmacro %}


{#- Aggregate: the group's `value`s as an array ordered by `order_by` (a list of 'expression [desc]'). On Spark a
    descending key must be numeric (it sorts by the negated key). -#}
{% macro ordered_array_agg(value, order_by) -%}
    {{ return(adapter.dispatch('ordered_array_agg')(value, order_by)) }}
{%- endmacro %}

{% macro default__ordered_array_agg(value, order_by) -%}
    list({{ value }} order by {{ order_by | join(', ') }})
{%- endmacro %}

{% macro spark__ordered_array_agg(value, order_by) -%}
    {%- set keys = [] -%}
    {%- for key in order_by -%}
        {%- set parts = key.split() -%}
        {%- if parts | length > 1 and parts[-1] | lower == 'desc' -%}
            {%- do keys.append('-(' ~ parts[:-1] | join(' ') ~ ') as k' ~ loop.index) -%}
        {%- else -%}
            {%- do keys.append(key ~ ' as k' ~ loop.index) -%}
        {%- endif -%}
    {%- endfor -%}
    transform(sort_array(collect_list(struct({{ keys | join(', ') }}, {{ value }} as v))), x -> x.v)
{%- endmacro %}


{#- Number of elements of an array. -#}
{% macro array_size(expression) -%}
    {{ return(adapter.dispatch('array_size')(expression)) }}
{%- endmacro %}

{% macro default__array_size(expression) -%}
    len({{ expression }})
{%- endmacro %}

{% macro spark__array_size(expression) -%}
    size({{ expression }})
{%- endmacro %}


{#- Sum of a numeric array's elements (a double). -#}
{% macro array_sum(expression) -%}
    {{ return(adapter.dispatch('array_sum')(expression)) }}
{%- endmacro %}

{% macro default__array_sum(expression) -%}
    list_sum({{ expression }})
{%- endmacro %}

{% macro spark__array_sum(expression) -%}
    aggregate({{ expression }}, cast(0 as double), (total, x) -> total + x)
{%- endmacro %}


{#- First element of an array (null when empty). -#}
{% macro array_first(expression) -%}
    {{ return(adapter.dispatch('array_first')(expression)) }}
{%- endmacro %}

{% macro default__array_first(expression) -%}
    {{ expression }}[1]
{%- endmacro %}

{% macro spark__array_first(expression) -%}
    try_element_at({{ expression }}, 1)
{%- endmacro %}


{#- Window aggregate (append `filter (...) over ...`): the frame's rows as an array of structs with `fields`. -#}
{% macro struct_array_agg(fields) -%}
    {{ return(adapter.dispatch('struct_array_agg')(fields)) }}
{%- endmacro %}

{% macro default__struct_array_agg(fields) -%}
    list({ {%- for f in fields %}'{{ f }}': {{ f }}{{ ", " if not loop.last }}{% endfor -%} })
{%- endmacro %}

{% macro spark__struct_array_agg(fields) -%}
    collect_list(named_struct({%- for f in fields %}'{{ f }}', {{ f }}{{ ", " if not loop.last }}{% endfor -%}))
{%- endmacro %}


{#- An array of structs sorted by its fields, largest first, mapped to one `field`. -#}
{% macro field_by_descending_struct(expression, field) -%}
    {{ return(adapter.dispatch('field_by_descending_struct')(expression, field)) }}
{%- endmacro %}

{% macro default__field_by_descending_struct(expression, field) -%}
    list_transform(list_reverse(list_sort({{ expression }})), lambda c: c.{{ field }})
{%- endmacro %}

{% macro spark__field_by_descending_struct(expression, field) -%}
    transform(sort_array({{ expression }}, false), c -> c.{{ field }})
{%- endmacro %}


{#- An array without repeats, each element where it first occurs. -#}
{% macro distinct_in_order(expression) -%}
    {{ return(adapter.dispatch('distinct_in_order')(expression)) }}
{%- endmacro %}

{% macro default__distinct_in_order(expression) -%}
    list_filter({{ expression }}, lambda c, i: list_position({{ expression }}, c) = i)
{%- endmacro %}

{% macro spark__distinct_in_order(expression) -%}
    array_distinct({{ expression }})
{%- endmacro %}


{#- A select over `left` (alias `left_alias`) where each row also gets the columns `values` (a list) from the latest
    row of `right` (alias `right_alias`) of the same `key` at or before its `time` (an as-of left join). DuckDB: ASOF LEFT JOIN. Spark has
    none: the right side's times must all occur on the left side too (true where `right` is derived from the same
    moments, as in fct_user_recent_activity), so an equi-join plus the last matched value carried forward per key
    gives the same rows. -#}
{% macro asof_left_join_select(left, left_alias, right, right_alias, key, time, values) -%}
    {{ return(adapter.dispatch('asof_left_join_select')(left, left_alias, right, right_alias, key, time, values)) }}
{%- endmacro %}

{% macro default__asof_left_join_select(left, left_alias, right, right_alias, key, time, values) -%}
    select {{ left_alias }}.*{% for v in values %}, {{ right_alias }}.{{ v }}{% endfor %}
    from {{ left }} as {{ left_alias }}
    asof left join {{ right }} as {{ right_alias }}
        on {{ left_alias }}.{{ key }} = {{ right_alias }}.{{ key }}
        and {{ left_alias }}.{{ time }} >= {{ right_alias }}.{{ time }}
{%- endmacro %}

{% macro spark__asof_left_join_select(left, left_alias, right, right_alias, key, time, values) -%}
    select
        {{ left_alias }}.*{% for v in values %},
        last(
            case when {{ right_alias }}.{{ key }} is not null then struct({{ right_alias }}.{{ v }} as v) end, true
        ) over (
            partition by {{ left_alias }}.{{ key }} order by {{ left_alias }}.{{ time }} rows unbounded preceding
        ).v as {{ v }}{% endfor %}
    from {{ left }} as {{ left_alias }}
    left join {{ right }} as {{ right_alias }}
        on {{ left_alias }}.{{ key }} = {{ right_alias }}.{{ key }}
        and {{ left_alias }}.{{ time }} = {{ right_alias }}.{{ time }}
{%- endmacro %}
