{#-
  First day an event-time incremental model recomputes on this run.

  The earlier of:
  - its newest day minus var('lookback_days') (the lookback every run redoes, whatever arrived), and
  - the earliest day touched by rows that arrived since this model last ran (`changes`: rows of the upstream
    model whose `changes_marker` time is newer than the newest `marker_column` already in this model).
  The second part makes lateness of any size land in its own day and session: a backfill of last month
  recomputes from last month, instead of being left out silently. `extra_days` reads more context before that
  day (a session that crossed midnight). On a full build: the beginning of time.
-#}
{% macro lookback_start(date_column, marker_column, changes, changes_date, changes_marker, extra_days=0,
                        changes_filter='true') -%}
    {%- if is_incremental() -%}
    least(
        (select max({{ date_column }}) from {{ this }}) - {{ var('lookback_days') + extra_days }},
        (
            select min({{ changes_date }}) - {{ extra_days }}
            from {{ changes }}
            where {{ changes_filter }}
                and {{ changes_marker }} > (
                    select coalesce(max({{ marker_column }}), timestamp '0001-01-01') from {{ this }}
                )
        )
    )
    {%- else -%}
    {{ beginning_of_time() }}
    {%- endif -%}
{%- endmacro %}
