{#-
  SCD type 2 from a change log: one row per distinct version of each key, valid from its updated_at until the
  next version's (null while current). Exact whatever the run cadence, and it takes versions that arrive out
  of order into their place; the dbt snapshots record instead what each run saw. A version delivered twice
  is kept once (the later delivery wins).
-#}
{% macro scd2_versions(relation, key, columns) -%}
with deliveries as (

    {#- A filtered subquery rather than `qualify`, which Spark has not: the same plan on DuckDB. -#}
    select
        {{ key }}, {{ columns | join(', ') }}, updated_at,
        row_number() over (
            partition by {{ key }}, updated_at order by ingested_at desc, batch_id desc, line_number desc
        ) as delivery_rank
    from {{ relation }}
    where reject_reason is null

),

versions as (

    select {{ key }}, {{ columns | join(', ') }}, updated_at
    from deliveries
    where delivery_rank = 1

),

final as (

    select
        {{ key }},
        {{ columns | join(',\n        ') }},
        updated_at as valid_from,
        lead(updated_at) over (partition by {{ key }} order by updated_at) as valid_to,
        lead(updated_at) over (partition by {{ key }} order by updated_at) is null as is_current
    from versions

)

select * from final
{%- endmacro %}
