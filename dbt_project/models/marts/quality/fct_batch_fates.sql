{#- One row per landed event batch: how many rows it brought and what became of them. -#}
with staged as (

    select * from {{ ref('stg_landing__events') }}

),

final as (

    select
        batch_id,
        any_value(source_file) as source_file,
        min(ingested_at) as ingested_at,
        count(*) as received,
        count(*) filter (where fate = 'accepted') as accepted,
        count(*) filter (where fate = 'duplicate') as duplicates,
        count(*) filter (where fate = 'quarantined') as quarantined
    from staged
    group by batch_id

)

select * from final
