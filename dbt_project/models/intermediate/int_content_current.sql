{#- The newest valid version of each catalog item. -#}
with versions as (

    select * from {{ ref('int_content_versions') }}

),

final as (

    select content_id, category, format, published_at, valid_from as updated_at
    from versions
    where is_current

)

select * from final
