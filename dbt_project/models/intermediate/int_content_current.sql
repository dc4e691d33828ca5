{#- The newest valid version of each catalog item. -#}
with versions as (

    select * from {{ ref('stg_landing__content') }}
    where reject_reason is null

),

final as (

    select content_id, category, format, published_at, updated_at
    from versions
    qualify row_number() over (partition by content_id order by updated_at desc, ingested_at desc, line_number desc) = 1

)

select * from final
