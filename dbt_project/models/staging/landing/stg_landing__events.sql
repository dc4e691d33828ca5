{#-
  Every landed event line, typed, with its fate: accepted, duplicate or quarantined.

  Append-only by batch: a run adds the batches it has not seen, so re-running changes nothing and a re-delivered
  event is a duplicate whichever run it arrives in. The first delivery (in ingestion order) of an event_id wins,
  so a full refresh decides exactly as the incremental runs did.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
    )
}}

with landed as (

    select * from {{ source('landing', 'events') }}
    {% if is_incremental() %}
    where batch_id not in (select distinct batch_id from {{ this }})
    {% endif %}

),

classified as (

    {{ classify_events('landed', var('future_tolerance_hours')) | indent(4) }}

),

previously_accepted as (

    {% if is_incremental() %}
    select event_id from {{ this }} where fate = 'accepted'
    {% else %}
    select cast(null as {{ dbt.type_string() }}) as event_id where false
    {% endif %}

),

ranked as (

    select
        classified.*,
        row_number() over (
            partition by classified.event_id, classified.reject_reason is null
            order by classified.ingested_at, classified.batch_id, classified.line_number
        ) as delivery_rank,
        previously_accepted.event_id is not null as seen_before
    from classified
    left join previously_accepted
        on classified.event_id = previously_accepted.event_id

),

final as (

    select
        batch_id,
        source_file,
        line_number,
        ingested_at,
        case
            when reject_reason is not null then 'quarantined'
            when delivery_rank = 1 and not seen_before then 'accepted'
            else 'duplicate'
        end as fate,
        reject_reason,
        reject_detail,
        raw,
        event_id,
        event_type,
        user_id,
        occurred_at,
        received_at,
        cast(occurred_at as date) as event_date,
        content_id,
        position,
        surface,
        request_id,
        dwell_seconds,
        value,
        currency,
        experiment_id,
        variant,
        policy,
        model_version,
        propensity,
        -- The dbt invocation that added the row (null on rows added before this column): the checks that warn
        -- about a landed row do so in the build that adds it, once (tests/duplicates_repeat_their_event.sql).
        '{{ invocation_id }}' as built_in_invocation
    from ranked

)

select * from final
