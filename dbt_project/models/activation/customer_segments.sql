{{ config(materialized='table') }}

-- Current segment membership, one row per customer and segment, with the segment's kind
-- and tags and the run date the customer's current stay began.
with

members as (

    select * from {{ ref('int_segment_members_unioned') }}

),

definitions as (

    select * from {{ ref('segment_definitions') }}

),

history as (

    select * from {{ ref('segment_membership_history') }}

),

open_stays as (

    select customer_id, segment, max(entered_at) as entered_at
    from history
    where exited_at is null
    group by customer_id, segment

),

final as (

    select
        members.customer_id,
        members.segment,
        definitions.segment_tags as tags,
        definitions.kind,
        open_stays.entered_at
    from members
    inner join definitions on definitions.segment = members.segment
    left join open_stays
        on open_stays.customer_id = members.customer_id
        and open_stays.segment = members.segment

)

select * from final
