{#- Every version of every catalog item (category, format) with the time it was valid: SCD type 2. -#}
{{ scd2_versions(ref('stg_landing__content'), 'content_id', ['category', 'format', 'published_at']) }}
