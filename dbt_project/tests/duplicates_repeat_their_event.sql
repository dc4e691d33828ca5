{#-
  A duplicate is a later delivery of an event already accepted (same event_id) and is set aside as the same event.
  One whose content differs from the accepted delivery is not a re-delivery but another event under a used id: a
  producer reusing ids, or a second simulated history ingested into the same home. It is still counted as a
  duplicate (the first delivery wins, as the contract says), but this warns with each such row, so it is not lost
  silently (found by a new-user trial: `tailor ingest` of another seed's files). received_at is left out: a
  re-delivery may be stamped again.

  It warns in the build that adds such a row (its `built_in_invocation`), once: the batch is immutable and the
  first delivery has already won, so there is nothing to fix, and the same warning on every later run could not
  be acknowledged (a trial). A `dbt test` on its own adds no row and passes; a full refresh of staging adds every
  row again and warns on them all. Every such row, whenever it came, is found by the query below without the
  `built_in_invocation` filter.
-#}
{{ config(severity='warn') }}

with accepted as (

    select * from {{ ref('stg_landing__events') }} where fate = 'accepted'

),

duplicates as (

    -- The rows this build added (see above).
    select * from {{ ref('stg_landing__events') }}
    where fate = 'duplicate' and built_in_invocation = '{{ invocation_id }}'

)

select
    duplicates.batch_id,
    duplicates.line_number,
    duplicates.event_id,
    accepted.batch_id as accepted_batch_id,
    accepted.line_number as accepted_line_number
from duplicates
inner join accepted
    on duplicates.event_id = accepted.event_id
where
    duplicates.event_type is distinct from accepted.event_type
    or duplicates.user_id is distinct from accepted.user_id
    or duplicates.occurred_at is distinct from accepted.occurred_at
    or duplicates.content_id is distinct from accepted.content_id
    or duplicates.request_id is distinct from accepted.request_id
    or duplicates.position is distinct from accepted.position
    or duplicates.surface is distinct from accepted.surface
    or duplicates.dwell_seconds is distinct from accepted.dwell_seconds
    or duplicates.value is distinct from accepted.value
    or duplicates.currency is distinct from accepted.currency
    or duplicates.experiment_id is distinct from accepted.experiment_id
    or duplicates.variant is distinct from accepted.variant
