{#-
  Row checks for a dimension file (users, content), written once; plain Jinja so `tailor ingest` can render it.
  `fields` is a list of (name, kind) with kind in string | timestamp | enum:<a>,<b>,...; all are required.
-#}
{% macro classify_dimension(relation, fields) -%}
{%- set iso_pattern = "\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:?\\d{2})" -%}
{%- set ns = namespace(rules=[]) -%}
{%- set ns.rules = ns.rules + [("not is_json_object", "invalid_json", "'not a JSON object: ' || left(raw, 80)")] -%}
{%- for name, kind in fields -%}
  {%- set ns.rules = ns.rules + [(
      "coalesce(json_type(j." ~ name ~ "), 'NULL') = 'NULL' or trim(j." ~ name ~ " ->> '$') = ''",
      "missing_field", "'missing " ~ name ~ "'")] -%}
{%- endfor -%}
{%- for name, kind in fields -%}
  {%- set ns.rules = ns.rules + [(
      "json_type(j." ~ name ~ ") <> 'VARCHAR'",
      "bad_type", "'" ~ name ~ " must be of type string, got ' || lower(json_type(j." ~ name ~ "))")] -%}
  {%- if kind == 'timestamp' -%}
    {%- set ns.rules = ns.rules + [(
        "not regexp_full_match(j." ~ name ~ " ->> '$', '" ~ iso_pattern ~ "')"
        ~ " or try_cast(j." ~ name ~ " ->> '$' as timestamptz) is null",
        "bad_timestamp", "'" ~ name ~ " is not an ISO 8601 time with a zone: ' || left(j." ~ name ~ " ->> '$', 40)")] -%}
  {%- elif kind.startswith('enum:') -%}
    {%- set allowed = kind[5:].split(',') -%}
    {%- set ns.rules = ns.rules + [(
        "(j." ~ name ~ " ->> '$') not in ('" ~ allowed | join("', '") ~ "')",
        "bad_value", "'" ~ name ~ " must be one of " ~ allowed | join(', ') ~ ", got ' || (j." ~ name ~ " ->> '$')")] -%}
  {%- endif -%}
{%- endfor -%}

with classify_source as (

    select
        *,
        coalesce(case when json_valid(raw) then json_type(raw) = 'OBJECT' end, false) as is_json_object
    from {{ relation }}

),

classify_parsed as (

    select
        *,
        case when is_json_object then from_json(
            raw, '{ {%- for name, kind in fields -%}"{{ name }}": "JSON"{{ ", " if not loop.last }}{%- endfor -%} }'
        ) end as j
    from classify_source

),

classify_checked as (

    select
        *,
        case
            {%- for condition, reason, detail in ns.rules %}
            when {{ condition }} then '{{ reason }}'
            {%- endfor %}
        end as reject_reason,
        case
            {%- for condition, reason, detail in ns.rules %}
            when {{ condition }} then {{ detail }}
            {%- endfor %}
        end as reject_detail
    from classify_parsed

)

select
    * exclude (j, is_json_object, raw),
    case when reject_reason is not null then raw end as raw,
    {%- for name, kind in fields %}
    {%- if kind == 'timestamp' %}
    try_cast(j.{{ name }} ->> '$' as timestamptz) at time zone 'UTC' as {{ name }}{{ "," if not loop.last }}
    {%- else %}
    j.{{ name }} ->> '$' as {{ name }}{{ "," if not loop.last }}
    {%- endif %}
    {%- endfor %}
from classify_checked
{%- endmacro %}

{#- The dimension contracts (tailor/contract/user.schema.json and content.schema.json). -#}
{% macro classify_users(relation) -%}
{{ classify_dimension(relation, [('user_id', 'string'), ('signup_at', 'timestamp'), ('country', 'string'),
                                 ('plan', 'enum:free,basic,premium'), ('updated_at', 'timestamp')]) }}
{%- endmacro %}

{% macro classify_content(relation) -%}
{{ classify_dimension(relation, [('content_id', 'string'), ('category', 'string'),
                                 ('format', 'enum:article,video,podcast'), ('published_at', 'timestamp'),
                                 ('updated_at', 'timestamp')]) }}
{%- endmacro %}
