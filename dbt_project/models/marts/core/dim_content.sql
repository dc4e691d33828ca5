{#- Catalog items as they are now. -#}
with content as (

    select * from {{ ref('int_content_current') }}

),

final as (

    select
        content_id,
        category,
        format,
        published_at,
        updated_at
    from content

)

select * from final
