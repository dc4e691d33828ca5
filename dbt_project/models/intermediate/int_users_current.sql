{#- The newest valid version of each user's profile: what the snapshot tracks and dim_users shows. -#}
with versions as (

    select * from {{ ref('int_user_versions') }}

),

final as (

    select user_id, signup_at, country, plan, valid_from as updated_at
    from versions
    where is_current

)

select * from final
