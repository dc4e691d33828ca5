{#-
  Sufficient statistics per experiment, variant and metric over everything since each unit's first exposure:
  what the experiment results are computed from. One row per experiment x variant x metric.
-#}
{{ config(materialized='table') }}

with unit_days as (

    select * from {{ ref('int_experiment_unit_days') }}

),

latest as (

    -- Every unit has a row for the newest day; its running totals are the whole post-exposure period.
    select * from unit_days
    where activity_date = (select max(activity_date) from unit_days)

),

final as (

    {{ experiment_stats('latest', prefix='cum_') }}

)

select * from final
