{#- Every version of every user's profile (plan, country) with the time it was valid: SCD type 2. -#}
select * from {{ ref('int_user_versions') }}
