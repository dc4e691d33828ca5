{#- Every landed users row, typed, with reject_reason null when it honours the contract. -#}
with landed as (

    select * from {{ source('landing', 'users') }}

),

classified as (

    {{ classify_users('landed') | indent(4) }}

)

select * from classified
