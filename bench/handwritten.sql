-- The baseline for bench/bench_pipeline.py: the core of Tailor's warehouse work written by hand as one DuckDB
-- script over the same JSON Lines files: parse, drop malformed rows, deduplicate by event_id, sessionize
-- (30-minute gap), roll up per user and day. No contract report, no quarantine table, no tests, no
-- incremental state: what a skilled engineer would write for a one-off.
-- {events_glob} is replaced by the benchmark.
set TimeZone = 'UTC';

create or replace table parsed as
select
    event_id,
    event_type,
    user_id,
    try_cast(occurred_at as timestamptz) at time zone 'UTC' as occurred_at,
    try_cast(received_at as timestamptz) at time zone 'UTC' as received_at,
    content_id,
    request_id,
    try_cast(dwell_seconds as double) as dwell_seconds,
    try_cast(value as double) as value
from read_ndjson(
    '{events_glob}',
    columns = {
        event_id: 'VARCHAR', event_type: 'VARCHAR', user_id: 'VARCHAR', occurred_at: 'VARCHAR',
        received_at: 'VARCHAR', content_id: 'VARCHAR', position: 'VARCHAR', surface: 'VARCHAR',
        request_id: 'VARCHAR', dwell_seconds: 'VARCHAR', value: 'VARCHAR', currency: 'VARCHAR',
        experiment_id: 'VARCHAR', variant: 'VARCHAR'
    },
    ignore_errors = true
);

create or replace table events as
select *
from parsed
where event_id is not null and user_id is not null and occurred_at is not null
    and event_type in ('impression', 'click', 'view', 'conversion', 'exposure')
    and occurred_at <= coalesce(received_at, now()::timestamp) + interval 24 hour
qualify row_number() over (partition by event_id order by received_at) = 1;

create or replace table sessions as
with gaps as (
    select *,
        case when occurred_at - lag(occurred_at) over w > interval 30 minute
             or lag(occurred_at) over w is null then 1 else 0 end as starts_session
    from events
    window w as (partition by user_id order by occurred_at, event_id)
),
numbered as (
    select *, sum(starts_session) over (partition by user_id order by occurred_at, event_id
                                        rows unbounded preceding) as session_number
    from gaps
)
select user_id, session_number, min(occurred_at) as session_start, max(occurred_at) as session_end,
       count(*) as events
from numbered
group by user_id, session_number;

create or replace table daily as
select user_id, cast(occurred_at as date) as activity_date,
       count(*) filter (where event_type = 'impression') as impressions,
       count(*) filter (where event_type = 'click') as clicks,
       count(*) filter (where event_type = 'view') as views,
       coalesce(sum(dwell_seconds), 0) as dwell_seconds,
       count(*) filter (where event_type = 'conversion') as conversions,
       coalesce(sum(value), 0) as value
from events
group by all;
