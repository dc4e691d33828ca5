{#- Every version of every catalog item (category, format) with the time it was valid: SCD type 2. -#}
select * from {{ ref('int_content_versions') }}
