{#-
  The quarantine: every landed row that broke the contract, with the reason and the original text, so a data
  engineer can fix the producer and re-deliver. Nothing is dropped silently.
-#}
with events as (

    select 'events' as source, batch_id, source_file, line_number, ingested_at, reject_reason, reject_detail, raw
    from {{ ref('stg_landing__events') }}
    where fate = 'quarantined'

),

users as (

    select 'users' as source, batch_id, source_file, line_number, ingested_at, reject_reason, reject_detail, raw
    from {{ ref('stg_landing__users') }}
    where reject_reason is not null

),

content as (

    select 'content' as source, batch_id, source_file, line_number, ingested_at, reject_reason, reject_detail, raw
    from {{ ref('stg_landing__content') }}
    where reject_reason is not null

),

final as (

    select * from events
    union all
    select * from users
    union all
    select * from content

)

select * from final
