{#-
  The contract's row checks, generated from the field rules of tailor/contract/*.schema.json.

  Plain Jinja only (no dbt context functions beyond fromjson), because `tailor ingest` renders these same files
  with jinja2 to tell the user, at ingestion time, what the warehouse will quarantine and why. That is also why the
  engine-specific SQL is chosen here by `target.type` (duckdb when rendered outside dbt) rather than with
  adapter.dispatch, which plain jinja2 does not have: DuckDB SQL by default, Spark SQL (4.x, the VARIANT type for
  the JSON) when dbt runs on Spark. The rules and their order are the same on both.
  The field rules come from contract_fields.sql, which `python -m tailor.contract` writes from the JSON
  Schemas: the schema a producer validates against and the checks the warehouse applies are one definition.

  `relation` must have the landing columns (raw, ingested_at, ...). Every input row comes out once, typed, with
  reject_reason null when it honours the contract, else a stable reason code and a human-readable detail.
  The first failing rule wins: the row must be a JSON object; then the envelope (missing fields, their JSON types,
  the event type, their values); then the fields of the row's own event type, in the same order; then `final`.
-#}

{#- The field rules of one kind, parsed from the generated JSON. -#}
{% macro contract_spec(kind) -%}
    {%- if kind == 'events' -%} {{ contract_fields_events() }}
    {%- elif kind == 'users' -%} {{ contract_fields_users() }}
    {%- else -%} {{ contract_fields_content() }}
    {%- endif -%}
{%- endmacro %}


{#- The SQL engine the checks are rendered for: dbt's target type, or duckdb where there is no dbt (ingestion). -#}
{% macro contract_engine() -%}
    {{- target.type if target is defined else 'duckdb' -}}
{%- endmacro %}


{#- A timestamp as ISO 8601 text in UTC, to the second. -#}
{% macro _contract_utc_text(expression) -%}
    {%- if contract_engine() == 'spark' -%}
    date_format({{ expression }}, "yyyy-MM-dd'T'HH:mm:ss'Z'")
    {%- else -%}
    strftime({{ expression }}, '%Y-%m-%dT%H:%M:%SZ')
    {%- endif -%}
{%- endmacro %}


{% macro classify_events(relation, future_tolerance_hours=24) -%}
{#- Not far in the future of when it was received (clock skew beyond tolerance = a broken client). The reference
    is the earlier of the client's received_at and our own ingestion time: a client clock that is wrong in both
    fields cannot push an event into the future (and the marts' newest day with it). No single JSON document can
    state this rule, so it is the one check the JSON Schema does not carry. -#}
{%- set reference = "least(coalesce(received_at__utc, ingested_at), ingested_at)" -%}
{%- set final = [(
    "occurred_at__utc > " ~ reference ~ " + interval " ~ future_tolerance_hours ~ " hour",
    "future_timestamp",
    "'occurred_at ' || " ~ _contract_utc_text('occurred_at__utc') ~ " || ' is more than " ~ future_tolerance_hours
    ~ " h after its received time ' || " ~ _contract_utc_text(reference))] -%}
{{ classify_contract(relation, fromjson(contract_spec('events')), 'event_type', final,
                     {'received_at': 'coalesce(received_at__utc, ingested_at)'}) }}
{%- endmacro %}


{% macro classify_users(relation) -%}
{{ classify_contract(relation, fromjson(contract_spec('users'))) }}
{%- endmacro %}


{% macro classify_content(relation) -%}
{{ classify_contract(relation, fromjson(contract_spec('content'))) }}
{%- endmacro %}


{#- One check over every row of `relation`, from a kind's field rules (see contract_fields.sql).
    type_field: the field whose value selects extra rules (events: event_type); its enum failing is
        'unknown_event_type'. final: (condition, reason, detail) rules applied last. overrides: output expressions
        that replace a field's plain typed value (events: received_at falls back to the ingestion time).
        landing_columns: the columns of `relation` besides raw, passed through (named on Spark only). -#}
{% macro classify_contract(relation, spec, type_field=none, final=[], overrides={},
                           landing_columns=['batch_id', 'source_file', 'line_number', 'ingested_at']) -%}
{%- set spark = contract_engine() == 'spark' -%}
{%- if spark -%}
  {#- Spark's chr() wraps above 255: the blank characters as one literal of \u escapes. -#}
  {%- set escapes = [] -%}
  {%- for code in spec.blank_code_points -%}{%- set _ = escapes.append("\\u%04x" | format(code)) -%}{%- endfor -%}
  {%- set blank_sql = "'" ~ escapes | join("") ~ "'" -%}
{%- else -%}
  {#- DuckDB: "only blank characters" as one RE2 class, [\x{9}\x{a}...]*: trim() with this character list took
      30x the regex's CPU time, most of the classification's (docs/benchmarks.md, issue 13). -#}
  {%- set classes = [] -%}
  {%- for code in spec.blank_code_points -%}{%- set _ = classes.append("\\x{%x}" | format(code)) -%}{%- endfor -%}
  {%- set blank_sql = "[" ~ classes | join("") ~ "]*" -%}
{%- endif -%}
{%- set groups = [('', spec.fields)] -%}
{#- 1. The line must be a JSON object. A line holding an escape of half a surrogate pair without its other half (no
    character: the engines' JSON readers refuse it, Python's accepts it) is said so, not "not a JSON object" (a
    trial). No backslash in the words: Spark's parser would read one as an escape. -#}
{%- set shown_raw = _contract_shown("left(raw, 80)", spec.control_class, spark) -%}
{%- set unpaired = _contract_contains(_contract_replace_all("raw", "\\\\u[dD][89abAB][0-9a-fA-F]{2}\\\\u[dD][c-fC-F][0-9a-fA-F]{2}", spark),
    "\\\\u[dD][89a-fA-F][0-9a-fA-F]{2}", spark) -%}
{%- set rules_of = {'': [("not is_json_object", "invalid_json",
    "case when " ~ unpaired ~ " then 'not valid JSON: an escape of half a surrogate pair (U+D800-U+DFFF) without its "
    ~ "other half, which is no character: ' else 'not a JSON object: ' end || " ~ shown_raw)]} -%}
{%- for t, fs in spec.by_type.items() -%}{%- set _ = groups.append((t, fs)) -%}{%- endfor -%}
{%- set all_fields = [] -%}
{%- set types_of = {} -%}
{%- for group, fields in groups -%}
  {%- for field in fields -%}
    {%- if field.name not in types_of -%}
      {%- set _ = all_fields.append(field) -%}
      {%- set _ = types_of.update({field.name: []}) -%}
    {%- endif -%}
    {%- if group -%}{%- set _ = types_of[field.name].append(group) -%}{%- endif -%}
  {%- endfor -%}
{%- endfor -%}
{%- for group, fields in groups -%}
  {%- set rules = rules_of.get(group, []) -%}
  {%- for stage in ['missing', 'type', 'value'] -%}
    {%- for field in fields -%}
      {%- set p = field.name -%}
      {%- set guard = (p ~ "__type <> 'NULL' and ") if field.nullable else "" -%}
      {#- The JSON type sent, in JSON's words (the engines' own names, ubigint or varchar, meant nothing to senders). -#}
      {%- set json_type = "case " ~ p ~ "__type when 'VARCHAR' then 'string' when 'BIGINT' then 'integer'"
          ~ " when 'UBIGINT' then 'integer' when 'DOUBLE' then 'number' else lower(" ~ p ~ "__type) end" -%}
      {#- A string sent is shown in quotes (`got string "long"`), so its text cannot read as a type or a number. -#}
      {#- Text sent is echoed with any control character shown as U+FFFD: a detail is read in terminals and logs. -#}
      {%- set sent = _contract_shown("left(" ~ p ~ "__text, 40)", spec.control_class, spark) -%}
      {%- set got = "' || " ~ json_type ~ " || ' ' || case when " ~ p ~ "__type = 'VARCHAR' then '\"' || "
          ~ sent ~ " || '\"' else " ~ sent ~ " end" -%}
      {%- set text = "' || " ~ sent -%}
      {%- if stage == 'missing' and field.required -%}
        {%- set condition = "coalesce(" ~ p ~ "__type, 'NULL') = 'NULL'" -%}
        {%- if field.kind == 'string' -%}
          {%- set condition = condition ~ " or (" ~ p ~ "__type = 'VARCHAR' and " ~ _contract_is_blank(p ~ "__text", blank_sql, spark) ~ ")" -%}
        {%- endif -%}
        {%- set _ = rules.append((condition, "missing_field",
            "'" ~ (group ~ " without " if group else "missing ") ~ p ~ "'")) -%}
      {%- elif stage == 'type' and field.kind in ('string', 'timestamp') -%}
        {%- set _ = rules.append((guard ~ p ~ "__type <> 'VARCHAR'",
            "bad_timestamp" if field.kind == 'timestamp' else "bad_type",
            "'" ~ p ~ " must be a string, got " ~ got)) -%}
      {%- elif stage == 'type' -%}
        {%- set _ = rules.append((guard ~ p ~ "__type not in ('BIGINT', 'UBIGINT', 'DOUBLE')", "bad_type",
            "'" ~ p ~ " must be of type " ~ field.kind ~ ", got " ~ got)) -%}
      {%- elif stage == 'value' and field.kind in ('integer', 'number') -%}
        {%- set number = "try_cast(" ~ p ~ "__text as double)" -%}
        {%- set _ = rules.append((guard ~ ("not (abs(" ~ number ~ ") < double('Infinity'))" if spark else "not isfinite(" ~ number ~ ")"),
            "bad_value",
            "'" ~ p ~ " must be a finite number, got " ~ text)) -%}
        {%- if field.kind == 'integer' -%}
          {%- set _ = rules.append((guard ~ number ~ " <> floor(" ~ number ~ ")", "bad_type",
              "'" ~ p ~ " must be of type integer, got " ~ text)) -%}
        {%- endif -%}
        {%- set bounds = [] -%}
        {%- if field.minimum is defined -%}{%- set _ = bounds.append(number ~ " < " ~ field.minimum) -%}{%- endif -%}
        {%- if field.maximum is defined -%}{%- set _ = bounds.append(number ~ " > " ~ field.maximum) -%}{%- endif -%}
        {%- if bounds -%}
          {%- set _ = rules.append((guard ~ "(" ~ bounds | join(" or ") ~ ")", "bad_value",
              "'" ~ p ~ " must be between " ~ field.get('minimum', '-inf') ~ " and " ~ field.get('maximum', 'inf')
              ~ ", got " ~ text)) -%}
        {%- endif -%}
      {%- elif stage == 'value' and field.kind == 'timestamp' -%}
        {%- set _ = rules.append((guard ~ "(not " ~ _contract_full_match(p ~ "__text", field.pattern, spark) ~ " or "
            ~ p ~ "__utc is null)", "bad_timestamp",
            "'" ~ p ~ " is not an ISO 8601 time with a zone between the years 2000 and 2999: " ~ text)) -%}
      {%- elif stage == 'value' -%}
        {#- An optional field, when sent, must not be blank either (a required one was caught as missing). -#}
        {%- if not field.required and (field.non_blank or field.min_length is defined) -%}
          {%- set empty = _contract_is_blank(p ~ "__text", blank_sql, spark) if field.non_blank else (p ~ "__text = ''") -%}
          {%- set _ = rules.append((guard ~ p ~ "__type = 'VARCHAR' and " ~ empty, "bad_value",
              "'" ~ p ~ " must not be blank when it is sent'")) -%}
        {%- endif -%}
        {%- if field.max_length is defined -%}
          {%- set _ = rules.append((guard ~ "length(" ~ p ~ "__text) > " ~ field.max_length, "bad_value",
              "'" ~ p ~ " must be at most " ~ field.max_length ~ " characters, got ' || length(" ~ p ~ "__text)")) -%}
        {%- endif -%}
        {%- if field.forbidden is defined -%}
          {#- Not the text itself in the detail (it holds the very character, a NUL say): its code and place. -#}
          {%- set found = _contract_first_of(p ~ "__text", field.forbidden, spark) -%}
          {%- set code = ("format_string" if spark else "printf") ~ "('U+%04X', " ~ ("ascii" if spark else "unicode")
              ~ "(" ~ found ~ "))" -%}
          {%- set _ = rules.append((guard ~ _contract_contains(p ~ "__text", field.forbidden, spark), "bad_value",
              "'" ~ p ~ " must not hold " ~ field.forbidden_form | replace("'", "''") ~ ", got ' || " ~ code
              ~ " || ' at character ' || " ~ ("instr" if spark else "strpos") ~ "(" ~ p ~ "__text, " ~ found ~ ")")) -%}
        {%- endif -%}
        {%- if field.enum is defined -%}
          {%- set _ = rules.append((guard ~ p ~ "__text not in ('" ~ field.enum | join("', '") ~ "')",
              "unknown_event_type" if p == type_field else "bad_value",
              "'" ~ p ~ " must be one of " ~ field.enum | join(", ") ~ ", got " ~ text)) -%}
        {%- endif -%}
        {%- if field.pattern is defined -%}
          {%- set _ = rules.append((guard ~ "not " ~ _contract_full_match(p ~ "__text", field.pattern, spark),
              "bad_value", "'" ~ p ~ " does not have the form the contract requires (" ~ field.form | replace("'", "''")
              ~ "), got " ~ text)) -%}
        {%- endif -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- set _ = rules_of.update({group: rules}) -%}
{%- endfor -%}
{%- set json_paths = "['$." ~ all_fields | map(attribute='name') | join("', '$.") ~ "']" -%}

{%- if spark %}
{{ _contract_parse_spark(relation, all_fields) }}
{%- else %}
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
        {%- for field in all_fields %}
        field_types[{{ loop.index }}] as {{ field.name }}__type,
        field_texts[{{ loop.index }}] as {{ field.name }}__text,
        {%- if field.kind == 'timestamp' %}
        try_cast(field_texts[{{ loop.index }}] as timestamptz) at time zone 'UTC' as {{ field.name }}__utc,
        {%- endif %}
        {%- endfor %}
    from classify_parsed

),
{%- endif %}

classify_checked as (

    select
        *,
        {{ _contract_case(rules_of, type_field, final, 1) | indent(8) }} as reject_reason
    from classify_fields

),

classify_explained as (

    -- The readable detail is built for rejected rows only (the rules run a second time there, not everywhere).
    select
        *,
        case when reject_reason is not null then
            {{ _contract_case(rules_of, type_field, final, 2) | indent(12) }}
        end as reject_detail
    from classify_checked

)

select
    {%- if spark %}
    {#- Spark has no `* exclude`: the landing columns but raw, by name, in the order DuckDB's exclude keeps. #}
    {{ landing_columns | join(", ") }}, reject_reason, reject_detail,
    {%- else %}
    * exclude (
        is_json_object, raw,
        {%- for field in all_fields %} {{ field.name }}__type, {{ field.name }}__text
        {%- if field.kind == 'timestamp' %}, {{ field.name }}__utc{% endif %}{{ "," if not loop.last }}
        {%- endfor %}
    ),
    {%- endif %}
    -- Keep the original text only where someone has to read it: quarantined rows.
    case when reject_reason is not null then raw end as raw,
    {%- for field in all_fields %}
    {%- set p = field.name %}
    {%- if p in overrides %}
    {%- set value = overrides[p] %}
    {%- elif field.kind == 'timestamp' %}
    {%- set value = p ~ "__utc" %}
    {%- elif field.kind == 'integer' %}
    {%- set value = "try_cast(try_cast(" ~ p ~ "__text as double) as integer)" %}
    {%- elif field.kind == 'number' %}
    {%- set value = "try_cast(" ~ p ~ "__text as double)" %}
    {%- else %}
    {%- set value = p ~ "__text" %}
    {%- endif %}
    {#- Fields of another event type are ignored (a view's stray "value" is not revenue). #}
    {%- if types_of[p] %}
    case when {{ type_field }}__text in ('{{ types_of[p] | join("', '") }}') then {{ value }} end as {{ p }}{{ "," if not loop.last }}
    {%- else %}
    {{ value }} as {{ p }}{{ "," if not loop.last }}
    {%- endif %}
    {%- endfor %}
from classify_explained
{%- endmacro %}


{#- One CASE over the rules, in order: the envelope's, then the row's own type's, then the final ones.
    `pick` 1 renders the reason code, 2 the readable detail. -#}
{% macro _contract_case(rules_of, type_field, final, pick) -%}
case
    {%- for rule in rules_of[''] %}
    when {{ rule[0] }} then {{ "'" ~ rule[1] ~ "'" if pick == 1 else rule[2] }}
    {%- endfor %}
    else coalesce(
        {%- if type_field %}
        case {{ type_field }}__text
            {%- for group, rules in rules_of.items() if group %}
            when '{{ group }}' then case
                {%- for rule in rules %}
                when {{ rule[0] }} then {{ "'" ~ rule[1] ~ "'" if pick == 1 else rule[2] }}
                {%- endfor %}
            end
            {%- endfor %}
        end,
        {%- endif %}
        case
            {%- for rule in final %}
            when {{ rule[0] }} then {{ "'" ~ rule[1] ~ "'" if pick == 1 else rule[2] }}
            {%- endfor %}
            when false then null
        end
    )
end
{%- endmacro %}


{#- Spark: the CTEs up to classify_fields, the same columns as DuckDB's. One parse of each line to a VARIANT; each
    field's JSON type named as DuckDB's json_type names it (VARCHAR, UBIGINT for integers >= 0, BIGINT, DOUBLE,
    BOOLEAN, NULL, OBJECT, ARRAY), so the rules and the details they print are the same; missing fields are SQL NULL
    on both, and both print numbers alike (1e5 as 100000.0, 1.50 as 1.5). Compared row for row on the simulator's
    histories (tests/integration/test_spark_parity.py); integers beyond 64 bits are not covered there. -#}
{% macro _contract_parse_spark(relation, all_fields) -%}
with classify_source as (

    select
        *,
        try_parse_json(raw) as raw__variant
    from {{ relation }}

),

classify_parsed as (

    select
        *,
        coalesce(schema_of_variant(raw__variant) like 'OBJECT%', false) as is_json_object
    from classify_source

),

classify_variants as (

    select
        *
        {%- for field in all_fields %},
        case when is_json_object then
            schema_of_variant(variant_get(raw__variant, '$.{{ field.name }}', 'variant'))
        end as {{ field.name }}__spark_type,
        case when is_json_object then try_variant_get(raw__variant, '$.{{ field.name }}', 'string') end
            as {{ field.name }}__text
        {%- endfor %}
    from classify_parsed

),

classify_fields as (

    select
        *
        {%- for field in all_fields %}
        {%- set t = field.name ~ "__spark_type" %},
        case
            when {{ t }} = 'STRING' then 'VARCHAR'
            when {{ t }} = 'VOID' then 'NULL'
            when {{ t }} in ('TINYINT', 'SMALLINT', 'INT', 'BIGINT') then
                case when try_cast({{ field.name }}__text as bigint) < 0 then 'BIGINT' else 'UBIGINT' end
            when {{ t }} in ('FLOAT', 'DOUBLE') or {{ t }} like 'DECIMAL%' then 'DOUBLE'
            when {{ t }} like 'OBJECT%' then 'OBJECT'
            when {{ t }} like 'ARRAY%' then 'ARRAY'
            else {{ t }}
        end as {{ field.name }}__type
        {%- if field.kind == 'timestamp' %},
        try_cast({{ field.name }}__text as timestamp) as {{ field.name }}__utc
        {%- endif %}
        {%- endfor %}
    from classify_variants

),
{%- endmacro %}


{#- `text` holds nothing but the contract's blank characters (or nothing at all). `blanks`: Spark, a string literal
    of those characters for trim; DuckDB, the RE2 pattern that matches a run of them. -#}
{% macro _contract_is_blank(text, blanks, spark) -%}
    {%- if spark -%}trim(BOTH {{ blanks }} FROM {{ text }}) = ''{%- else -%}regexp_full_match({{ text }}, '{{ blanks }}'){%- endif -%}
{%- endmacro %}


{#- The whole of `text` matches the RE2 `pattern` (Spark: Java regex, a raw literal so backslashes stay). -#}
{% macro _contract_full_match(text, pattern, spark) -%}
    {%- if spark -%}{{ text }} rlike r'^(?:{{ pattern }})$'{%- else -%}regexp_full_match({{ text }}, '{{ pattern }}'){%- endif -%}
{%- endmacro %}


{#- Some character of `text` matches the RE2 class `pattern` (Spark: Java's rlike, which searches too). -#}
{% macro _contract_contains(text, pattern, spark) -%}
    {%- if spark -%}{{ text }} rlike r'{{ pattern }}'{%- else -%}regexp_matches({{ text }}, '{{ pattern }}'){%- endif -%}
{%- endmacro %}


{#- The first character of `text` that matches the RE2 class `pattern`. -#}
{% macro _contract_first_of(text, pattern, spark) -%}
    {%- if spark -%}regexp_extract({{ text }}, r'({{ pattern }})', 1){%- else -%}regexp_extract({{ text }}, '{{ pattern }}'){%- endif -%}
{%- endmacro %}


{#- `text` with each character of the RE2 class `control_class` replaced by U+FFFD, for a reject detail. -#}
{% macro _contract_shown(text, control_class, spark) -%}
    {{ _contract_replace_all(text, control_class, spark, '�') }}
{%- endmacro %}


{#- `text` with every match of the RE2 `pattern` replaced by `replacement` (removed by default). -#}
{% macro _contract_replace_all(text, pattern, spark, replacement='') -%}
    {%- if spark -%}regexp_replace({{ text }}, r'{{ pattern }}', '{{ replacement }}'){%- else -%}regexp_replace({{ text }}, '{{ pattern }}', '{{ replacement }}', 'g'){%- endif -%}
{%- endmacro %}
