{#-
  Cumulative sufficient statistics as of the end of each day (units first exposed by then, their totals up to
  then): the path a sequential test or a daily peek sees. One row per experiment x variant x metric x day.
-#}
{{ config(materialized='table') }}

with unit_days as (

    select * from {{ ref('int_experiment_unit_days') }}

),

final as (

    {{ experiment_stats('unit_days', group_by=['activity_date as as_of_date'], prefix='cum_') }}

)

select * from final
