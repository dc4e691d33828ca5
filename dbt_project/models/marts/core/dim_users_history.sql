{#- Every version of every user's profile (plan, country) with the time it was valid: SCD type 2. -#}
{{ scd2_versions(ref('stg_landing__users'), 'user_id', ['signup_at', 'country', 'plan']) }}
