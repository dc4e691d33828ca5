{#-
  One row per experiment variant, registered (seed `experiments`) or only seen in exposures: its configured
  traffic weight, whether it is the control, the planned sample size, and how many units were exposed, excluded
  as crossovers, or carried a variant the registry does not list. An experiment seen only in exposures is
  analysed with an equal split and the alphabetically first variant (or one named 'control') as control.
-#}
{{ config(materialized='table') }}

with registry as (

    select * from {{ ref('experiments') }}

),

units as (

    select * from {{ ref('fct_experiment_units') }}

),

observed as (

    select
        experiment_id,
        variant,
        count(*) as units_exposed,
        count(*) filter (where not is_crossover and not is_unknown_variant) as units_analysed,
        count(*) filter (where is_crossover) as units_crossover,
        count(*) filter (where is_unknown_variant) as units_unknown_variant,
        min(first_exposed_at) as first_exposure_at,
        max(first_exposed_at) as last_first_exposure_at
    from units
    group by experiment_id, variant

),

unregistered as (

    select
        experiment_id,
        variant,
        cast(1 as double) / count(*) over (partition by experiment_id) as weight,
        -- 'control' if present, else the alphabetically first variant.
        variant = first_value(variant) over (
            partition by experiment_id order by variant <> 'control', variant
        ) as is_control
    from observed
    where experiment_id not in (select experiment_id from registry)

),

variants as (

    select
        experiment_id,
        variant,
        cast(weight as double) as weight,
        cast(is_control as boolean) as is_control,
        cast(planned_units_per_variant as bigint) as planned_units_per_variant,
        cast(description as {{ dbt.type_string() }}) as description,
        true as is_registered
    from registry
    union all
    select
        experiment_id,
        variant,
        weight,
        is_control,
        cast(null as bigint),
        cast(null as {{ dbt.type_string() }}),
        false
    from unregistered

),

final as (

    -- The full join keeps variants that were exposed but are not registered (weight null: not in the split).
    select
        coalesce(variants.experiment_id, observed.experiment_id) as experiment_id,
        coalesce(variants.variant, observed.variant) as variant,
        coalesce(variants.is_control, false) as is_control,
        variants.weight,
        variants.planned_units_per_variant,
        variants.description,
        coalesce(variants.is_registered, false) as is_registered,
        coalesce(observed.units_exposed, 0) as units_exposed,
        coalesce(observed.units_analysed, 0) as units_analysed,
        coalesce(observed.units_crossover, 0) as units_crossover,
        coalesce(observed.units_unknown_variant, 0) as units_unknown_variant,
        observed.first_exposure_at,
        observed.last_first_exposure_at
    from variants
    full outer join observed
        on variants.experiment_id = observed.experiment_id
        and variants.variant = observed.variant

)

select * from final
