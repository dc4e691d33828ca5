{#-
  One row per version of a catalog item (its category, format and publication time), stamped with the moment the
  version became valid (dim_content_history.valid_from): the source of Feast's content_profile view. A point-in-time
  join then reads the catalog record valid at the request, so an item is known from its first record on, the day
  it is published included. (The daily snapshot's rows, fct_content_features_daily, hold the values as of the end
  of a day and are stamped at the next midnight: an item shown on the day it was published had no category, age or
  category affinity there, found by a trial with a news site's own events.)

  event_timestamp is the moment a version became valid, cut to the whole second (Feast's online store keeps event
  times in seconds, and its freshness check compares them with this column); versions within one second keep the
  newest. The first version of an item counts from its publication when that is earlier than the record's
  updated_at: a catalog exported with "last modified" times would otherwise leave every impression between the
  publication and the item's last edit without a category (a re-check trial). Cutting to the second, not rounding
  up, keeps an impression in the same second as a publication or a relabel (a trial's 0.3 s) from missing it; a
  version can so be read up to a second before its time, which tells a model nothing users did.
-#}

with versions as (

    select * from {{ ref('dim_content_history') }}

),

numbered as (

    select
        *,
        row_number() over (partition by content_id order by valid_from) as version_number
    from versions

),

stamped as (

    select
        content_id,
        category,
        format,
        published_at,
        valid_from,
        date_trunc(
            'second',
            case when version_number = 1 and published_at < valid_from then published_at else valid_from end
        ) as valid_from_second
    from numbered

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
