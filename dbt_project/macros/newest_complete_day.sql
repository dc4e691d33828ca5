{#-
  The newest day whose data is complete. Every day but the newest is complete: the history has moved past it. The
  newest is complete once it holds an event from var('complete_from_hour') UTC on; before, it is the day in progress
  (a feed that runs all day) or the few minutes after midnight that the last sessions spill into. The feature marts
  end on this day: a day's features are as of its end (the next midnight), and a day in progress would give them from
  a part of it (a trial: 20 impressions, the platform's 1-day CTR at 0.25), which the online store then serves beside
  training rows made from whole days. The same rule as ml.data_days.COMPLETE_FROM_HOUR (the retrain rule, the training
  set, the app's Overview).

  An aggregate expression (a date) over the rows of the query it is in, e.g. `select ... from engagement`: date_column
  is a row's UTC day, time_column its newest event time (UTC, timestamp without zone).
-#}
{% macro newest_complete_day(date_column, time_column) -%}
    case
        when max(case when extract(hour from {{ time_column }}) >= {{ var('complete_from_hour') }}
                      then {{ date_column }} end) = max({{ date_column }})
            then max({{ date_column }})
        else max({{ date_column }}) - 1
    end
{%- endmacro %}
