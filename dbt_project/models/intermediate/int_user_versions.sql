{#- Every valid version of every user's profile with its validity period (SCD type 2). -#}
{{ scd2_versions(ref('stg_landing__users'), 'user_id', ['signup_at', 'country', 'plan']) }}
