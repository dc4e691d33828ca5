{#- The newest valid version of each user's profile: what the snapshot tracks and dim_users shows. -#}
with versions as (

    select * from {{ ref('stg_landing__users') }}
    where reject_reason is null

),

final as (

    select user_id, signup_at, country, plan, updated_at
    from versions
    qualify row_number() over (partition by user_id order by updated_at desc, ingested_at desc, line_number desc) = 1

)

select * from final
