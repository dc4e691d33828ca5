{#-
  One row per version of a catalog item (its category, format and publication time), stamped with the moment the
  version became valid (dim_content_history.valid_from): the source of Feast's content_profile view. A point-in-time
  join then reads the catalog record valid at the request, so an item is known from its first record on, the day
  it is published included. (The daily snapshot's rows, fct_content_features_daily, hold the values as of the end
  of a day and are stamped at the next midnight: an item shown on the day it was published had no category, age or
  category affinity there, found by a trial with a news site's own events.)

  event_timestamp is valid_from rounded up to the whole second: Feast's online store keeps event times in seconds
  (the freshness check compares them with this column), and rounding up never shows a version before it was valid.
  Versions that round to the same second keep the newest, the one valid at that second.
-#}

with versions as (

    select * from {{ ref('dim_content_history') }}

),

stamped as (

    select
        content_id,
        category,
        format,
        published_at,
        valid_from,
        date_trunc('second', valid_from)
            + case when valid_from > date_trunc('second', valid_from) then interval 1 second
                   else interval 0 second end as valid_from_second
    from versions

),

newest_per_second as (

    select
        *,
        row_number() over (partition by content_id, valid_from_second order by valid_from desc) as newest_first
    from stamped

),

final as (

    select
        content_id,
        -- With a zone, so that no reader can take these for local time (Feast compares them with request times).
        {{ utc_instant('valid_from_second') }} as event_timestamp,
        category,
        format,
        -- Whole seconds: Feast's online store keeps timestamps in seconds, and training must see what serving sees.
        {{ utc_instant("date_trunc('second', published_at)") }} as published_at
    from newest_per_second
    where newest_first = 1

)

select * from final
