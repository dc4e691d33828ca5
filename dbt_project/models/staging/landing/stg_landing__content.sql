{#- Every landed content row, typed, with reject_reason null when it honours the contract. -#}
with landed as (

    select * from {{ source('landing', 'content') }}

),

classified as (

    {{ classify_content('landed') | indent(4) }}

)

select * from classified
