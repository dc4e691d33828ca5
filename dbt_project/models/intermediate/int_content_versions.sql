{#- Every valid version of every catalog item with its validity period (SCD type 2). -#}
{{ scd2_versions(ref('stg_landing__content'), 'content_id', ['category', 'format', 'published_at']) }}
