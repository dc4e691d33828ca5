{#-
  One row per experiment and unit (user): the first exposure and its variant. A unit exposed to more than one
  variant (a crossover: broken assignment, shared device, a changed split) is kept here but flagged, and every
  analysis excludes it: its outcome mixes both treatments.
-#}
with exposures as (

    select * from {{ ref('fct_events') }}
    where event_type = 'exposure'

),

registry as (

    select * from {{ ref('experiments') }}

),

per_unit as (

    select
        experiment_id,
        user_id,
        min(occurred_at) as first_exposed_at,
        -- Ties at the same instant resolve by variant name, so reruns agree.
        {{ arg_min('variant', ['occurred_at', 'variant']) }} as variant,
        count(distinct variant) as variants_seen,
        count(*) as exposures
    from exposures
    group by experiment_id, user_id

),

final as (

    select
        per_unit.experiment_id,
        per_unit.user_id,
        per_unit.variant,
        per_unit.first_exposed_at,
        cast(per_unit.first_exposed_at as date) as first_exposed_date,
        per_unit.exposures,
        per_unit.variants_seen,
        per_unit.variants_seen > 1 as is_crossover,
        -- A variant the registry does not list for a registered experiment is excluded too (a typo, a stale arm).
        registry.variant is null
            and per_unit.experiment_id in (select experiment_id from registry) as is_unknown_variant
    from per_unit
    left join registry
        on per_unit.experiment_id = registry.experiment_id
        and per_unit.variant = registry.variant

)

select * from final
