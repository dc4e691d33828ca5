{#-
  Sufficient statistics of each metric on the k-th day after first exposure (that day's activity alone), for
  every unit exposed at least k days before the newest data: a treatment effect that shrinks with k is a novelty
  effect, one that grows a learning effect. One row per experiment x variant x metric x days since exposure.
-#}
{{ config(materialized='table') }}

with unit_days as (

    select * from {{ ref('int_experiment_unit_days') }}

),

final as (

    {{ experiment_stats('unit_days', group_by=['days_since_exposure'], prefix='') }}

)

select * from final
