{#- Users as they are now, with when they were first and last active. -#}
with users as (

    select * from {{ ref('int_users_current') }}

),

activity as (

    select
        user_id,
        min(first_event_at) as first_active_at,
        max(last_event_at) as last_active_at,
        count(*) as active_days
    from {{ ref('fct_daily_user_engagement') }}
    group by user_id

),

final as (

    select
        users.user_id,
        users.signup_at,
        users.country,
        users.plan,
        users.updated_at,
        activity.first_active_at,
        activity.last_active_at,
        coalesce(activity.active_days, 0) as active_days
    from users
    left join activity on users.user_id = activity.user_id

)

select * from final
