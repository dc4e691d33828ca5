{#-
  The event contract's row checks, written once.

  Plain Jinja and DuckDB SQL only (no dbt context functions such as ref or var), because `tailor ingest` renders
  this same file with jinja2 to tell the user, at ingestion time, what the warehouse will quarantine and why.
  `relation` must have the landing columns (raw, ingested_at, ...). Every input row comes out once, typed, with
  reject_reason null when it honours the contract, else a stable reason code and a human-readable detail.
  The first failing rule wins, in the order written below.
-#}
{% macro classify_events(relation, future_tolerance_hours=24) -%}
{%- set event_types = ['impression', 'click', 'view', 'conversion', 'exposure'] -%}
{%- set envelope = [('event_id', 'string'), ('event_type', 'string'), ('user_id', 'string')] -%}
{%- set required_by_type = {
    'impression': [('content_id', 'string'), ('position', 'integer'), ('surface', 'string'), ('request_id', 'string')],
    'click': [('content_id', 'string'), ('request_id', 'string')],
    'view': [('content_id', 'string'), ('dwell_seconds', 'number')],
    'conversion': [('value', 'number'), ('currency', 'string')],
    'exposure': [('experiment_id', 'string'), ('variant', 'string')],
} -%}
{%- set json_fields = ['event_id', 'event_type', 'user_id', 'occurred_at', 'received_at', 'content_id', 'position',
                       'surface', 'request_id', 'dwell_seconds', 'value', 'currency', 'experiment_id', 'variant'] -%}
{%- set json_paths = "['$." ~ json_fields | join("', '$.") ~ "']" -%}
{%- set json_kinds = {'string': "('VARCHAR')", 'integer': "('BIGINT', 'UBIGINT')",
                      'number': "('BIGINT', 'UBIGINT', 'DOUBLE')"} -%}
{%- set iso_pattern = "\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:?\\d{2})" -%}
{%- set ns = namespace(rules=[]) -%}

{#- 1. The line must be a JSON object. -#}
{%- set ns.rules = ns.rules + [("not is_json_object", "invalid_json", "'not a JSON object: ' || left(raw, 80)")] -%}

{#- 2. The envelope: present, non-empty strings. -#}
{%- for field, kind in envelope -%}
  {%- set ns.rules = ns.rules + [(
      "coalesce(" ~ field ~ "__type, 'NULL') = 'NULL' or trim(" ~ field ~ "__text) = ''",
      "missing_field", "'missing " ~ field ~ "'")] -%}
{%- endfor -%}
{%- set ns.rules = ns.rules + [(
    "coalesce(occurred_at__type, 'NULL') = 'NULL'", "missing_field", "'missing occurred_at'")] -%}
{%- for field, kind in envelope -%}
  {%- set ns.rules = ns.rules + [(
      "" ~ field ~ "__type not in " ~ json_kinds[kind],
      "bad_type", "'" ~ field ~ " must be of type " ~ kind ~ ", got ' || lower(" ~ field ~ "__type)")] -%}
{%- endfor -%}

{#- 3. A known event type. -#}
{%- set ns.rules = ns.rules + [(
    "event_type__text not in ('" ~ event_types | join("', '") ~ "')",
    "unknown_event_type", "'unknown event_type ' || event_type__text")] -%}

{#- 4. Timestamps: ISO 8601 with a zone. -#}
{%- for field in ['occurred_at', 'received_at'] -%}
  {%- set ns.rules = ns.rules + [(
      "coalesce(" ~ field ~ "__type, 'NULL') <> 'NULL' and (" ~ field ~ "__type <> 'VARCHAR'"
      ~ " or not regexp_full_match(" ~ field ~ "__text, '" ~ iso_pattern ~ "')"
      ~ " or try_cast(" ~ field ~ "__text as timestamptz) is null)",
      "bad_timestamp", "'" ~ field ~ " is not an ISO 8601 time with a zone: ' || left(" ~ field ~ "__text, 40)")] -%}
{%- endfor -%}
{%- set ns.rules = ns.rules + [(
    "occurred_at_utc < timestamp '2000-01-01'", "bad_timestamp",
    "'occurred_at ' || strftime(occurred_at_utc, '%Y-%m-%d') || ' is before 2000-01-01'")] -%}

{#- 5. The fields each event type requires, then their JSON types, then their ranges. Nested under the event
    type in the SQL, so a row is checked only against its own type's rules (a third of the work). -#}
{%- set ranges = {
    'impression': [("not coalesce(try_cast(position__text as bigint) between 1 and 1000, false)",
                    "'position must be between 1 and 1000, got ' || position__text")],
    'view': [("not coalesce(try_cast(dwell_seconds__text as double) between 0 and 86400, false)",
              "'dwell_seconds must be between 0 and 86400, got ' || dwell_seconds__text")],
    'conversion': [("try_cast(value__text as double) < 0", "'value must not be negative, got ' || value__text"),
                   ("not regexp_full_match(currency__text, '[A-Z]{3}')",
                    "'currency must be an ISO 4217 code, got ' || currency__text")],
} -%}
{#- (coalesce above: a number too large for the cast is out of range too, not a silent null.) -#}
{%- set typed = {} -%}
{%- for event_type, fields in required_by_type.items() -%}
  {%- set of_type = namespace(rules=[]) -%}
  {%- for field, kind in fields -%}
    {%- set of_type.rules = of_type.rules + [(
        "coalesce(" ~ field ~ "__type, 'NULL') = 'NULL'" ~ (" or trim(" ~ field ~ "__text) = ''" if kind == 'string' else ""),
        "missing_field", "'" ~ event_type ~ " without " ~ field ~ "'")] -%}
  {%- endfor -%}
  {%- for field, kind in fields -%}
    {%- set of_type.rules = of_type.rules + [(
        field ~ "__type not in " ~ json_kinds[kind],
        "bad_type", "'" ~ field ~ " must be of type " ~ kind ~ ", got ' || lower(" ~ field ~ "__type) || ' '"
        ~ " || left(" ~ field ~ "__text, 40)")] -%}
  {%- endfor -%}
  {%- for condition, detail in ranges.get(event_type, []) -%}
    {%- set of_type.rules = of_type.rules + [(condition, "bad_value", detail)] -%}
  {%- endfor -%}
  {%- set _ = typed.update({event_type: of_type.rules}) -%}
{%- endfor -%}

{#- 6. Not far in the future of when it was received (clock skew beyond tolerance = a broken client). -#}
{#- The reference is the earlier of the client's received_at and our own ingestion time: a client clock that is
    wrong in both fields cannot push an event into the future (and the marts' newest day with it). -#}
{%- set reference = "least(coalesce(received_at_utc, ingested_at), ingested_at)" -%}
{%- set final = [(
    "occurred_at_utc > " ~ reference ~ " + interval " ~ future_tolerance_hours ~ " hour",
    "future_timestamp",
    "'occurred_at ' || strftime(occurred_at_utc, '%Y-%m-%dT%H:%M:%SZ') || ' is after received time ' || "
    ~ "strftime(" ~ reference ~ ", '%Y-%m-%dT%H:%M:%SZ')")] -%}

with classify_source as (

    select
        *,
        coalesce(case when json_valid(raw) then json_type(raw) = 'OBJECT' end, false) as is_json_object
    from {{ relation }}

),

classify_parsed as (

    {#- One parse for every field's JSON type and one for every field's text: twice as fast as parsing to a
        struct and then each field again. -#}
    select
        *,
        case when is_json_object then json_type(raw, {{ json_paths }}) end as field_types,
        case when is_json_object then json_extract_string(raw, {{ json_paths }}) end as field_texts
    from classify_source

),

classify_fields as (

    select
        * exclude (field_types, field_texts),
        {%- for f in json_fields %}
        field_types[{{ loop.index }}] as {{ f }}__type,
        field_texts[{{ loop.index }}] as {{ f }}__text{{ "," if not loop.last }}
        {%- endfor %}
    from classify_parsed

),

classify_timed as (

    select
        *,
        try_cast(occurred_at__text as timestamptz) at time zone 'UTC' as occurred_at_utc,
        try_cast(received_at__text as timestamptz) at time zone 'UTC' as received_at_utc
    from classify_fields

),

classify_checked as (

    select
        *,
        {{ _contract_case(ns.rules, typed, final, 1) | indent(8) }} as reject_reason
    from classify_timed

),

classify_explained as (

    -- The readable detail is built for rejected rows only (the rules run a second time there, not everywhere).
    select
        *,
        case when reject_reason is not null then
            {{ _contract_case(ns.rules, typed, final, 2) | indent(12) }}
        end as reject_detail
    from classify_checked

)

select
    * exclude (
        is_json_object, occurred_at_utc, received_at_utc, raw,
        {%- for f in json_fields %} {{ f }}__type, {{ f }}__text{{ "," if not loop.last }}{%- endfor %}
    ),
    -- Keep the original text only where someone has to read it: quarantined rows.
    case when reject_reason is not null then raw end as raw,
    event_id__text as event_id,
    event_type__text as event_type,
    user_id__text as user_id,
    occurred_at_utc as occurred_at,
    coalesce(received_at_utc, ingested_at) as received_at,
    -- Fields that do not belong to the event's type are ignored (a view's stray "value" is not revenue).
    case when event_type__text in ('impression', 'click', 'view') then content_id__text end as content_id,
    case when event_type__text = 'impression' then try_cast(position__text as integer) end as position,
    case when event_type__text = 'impression' then surface__text end as surface,
    case when event_type__text in ('impression', 'click') then request_id__text end as request_id,
    case when event_type__text = 'view' then try_cast(dwell_seconds__text as double) end as dwell_seconds,
    case when event_type__text = 'conversion' then try_cast(value__text as double) end as value,
    case when event_type__text = 'conversion' then currency__text end as currency,
    case when event_type__text = 'exposure' then experiment_id__text end as experiment_id,
    case when event_type__text = 'exposure' then variant__text end as variant
from classify_explained
{%- endmacro %}


{#- One CASE over the rules, in order: the generic ones, then the row's own type's, then the final ones.
    `pick` 1 renders the reason code, 2 the readable detail. Plain Jinja, like the macro above. -#}
{% macro _contract_case(generic, typed, final, pick) -%}
case
    {%- for rule in generic %}
    when {{ rule[0] }} then {{ "'" ~ rule[1] ~ "'" if pick == 1 else rule[2] }}
    {%- endfor %}
    else coalesce(
        case event_type__text
            {%- for event_type, rules in typed.items() %}
            when '{{ event_type }}' then case
                {%- for rule in rules %}
                when {{ rule[0] }} then {{ "'" ~ rule[1] ~ "'" if pick == 1 else rule[2] }}
                {%- endfor %}
            end
            {%- endfor %}
        end,
        case
            {%- for rule in final %}
            when {{ rule[0] }} then {{ "'" ~ rule[1] ~ "'" if pick == 1 else rule[2] }}
            {%- endfor %}
        end
    )
end
{%- endmacro %}
