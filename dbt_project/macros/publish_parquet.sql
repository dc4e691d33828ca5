{#-
  Post-hook for marts that other layers read as files (Feast's DuckDB offline store reads Parquet, and the app
  must not hold the warehouse open while a run writes it). Writes <TAILOR_HOME>/marts/<model>.parquet.
-#}
{% macro publish_parquet() -%}
    {%- if target.type == 'duckdb' -%}
    copy (select * from {{ this }})
    to '{{ env_var("TAILOR_HOME", "../data") }}/marts/{{ this.identifier }}.parquet'
    (format parquet, compression zstd)
    {%- endif -%}
{%- endmacro %}
