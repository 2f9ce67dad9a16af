{{ config(
    materialized='incremental',
    unique_key=['customer_id', 'segment', 'entered_at'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    full_refresh=false,
) }}

-- One row per stay of a customer in a segment: entered_at is the run date they joined,
-- exited_at the run date they were first seen outside it (null while they are in).
--
-- Each build writes only the rows that change, as of the run date R:
--   exits    open stays whose customer is no longer a member -> exited_at = R
--   entries  members without an open stay -> a new stay entered on R
--   undo     what an earlier attempt of R wrote is replaced: a stay it closed on R is
--            reopened when the customer is still a member, and a stay it opened on R is
--            closed on R when they are not; so a rerun of R leaves the table as it was.
-- A backfill (R before the latest date already recorded) writes nothing: the history
-- tells the latest timeline and is not rewound.
with

members as (

    select customer_id, segment from {{ ref('int_segment_members_unioned') }}

),

{% if is_incremental() %}

recorded_stays as (

    select customer_id, segment, entered_at, exited_at from {{ this }}

),

applies as (

    select
        coalesce(max(case when exited_at > entered_at then exited_at else entered_at end), {{ run_date() }})
        <= {{ run_date() }} as is_latest
    from recorded_stays

),

open_before as (

    -- Stays open at the start of R (a close on R by an earlier attempt is undone).
    select * from recorded_stays
    where entered_at < {{ run_date() }}
        and (exited_at is null or exited_at >= {{ run_date() }})

),

opened_on_run_date as (

    select * from recorded_stays where entered_at = {{ run_date() }}

),

changes as (

    select
        open_before.customer_id,
        open_before.segment,
        open_before.entered_at,
        case when members.customer_id is null then {{ run_date() }} end as exited_at
    from open_before
    left join members
        on members.customer_id = open_before.customer_id
        and members.segment = open_before.segment

    union all

    select members.customer_id, members.segment, {{ run_date() }}, cast(null as date)
    from members
    left join open_before
        on open_before.customer_id = members.customer_id
        and open_before.segment = members.segment
    where open_before.customer_id is null

    union all

    select
        opened_on_run_date.customer_id,
        opened_on_run_date.segment,
        opened_on_run_date.entered_at,
        {{ run_date() }}
    from opened_on_run_date
    left join members
        on members.customer_id = opened_on_run_date.customer_id
        and members.segment = opened_on_run_date.segment
    where members.customer_id is null

),

final as (

    select changes.*
    from changes
    cross join applies
    where applies.is_latest
        and not exists (
            select 1 from recorded_stays
            where recorded_stays.customer_id = changes.customer_id
                and recorded_stays.segment = changes.segment
                and recorded_stays.entered_at = changes.entered_at
                and recorded_stays.exited_at is not distinct from changes.exited_at
        )

)

{% else %}

final as (

    select customer_id, segment, {{ run_date() }} as entered_at, cast(null as date) as exited_at
    from members

)

{% endif %}

select
    cast(customer_id as varchar) as customer_id,
    cast(segment as varchar) as segment,
    cast(entered_at as date) as entered_at,
    cast(exited_at as date) as exited_at
from final
