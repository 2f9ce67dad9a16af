{{ config(
    materialized='incremental',
    unique_key=['source', 'source_record_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
) }}

-- The identities the event streams carry, one row each, aggregated over all their events:
-- a web user (its newest traits and when it was last seen), an anonymous id (the user it
-- was linked to, from the events that carry both) and an ESP address (when its newest event
-- happened). int_identity_records_unioned turns them into identity records.
--
-- Kept incrementally: an identity that has an event ingested after the newest this table
-- holds is aggregated again over all its events; every other row stays. The result equals
-- aggregating every event, as long as a re-delivered event keeps its user id, anonymous id
-- and address (an event is an immutable fact; a changed re-delivery still replaces its own
-- values, but the identity it no longer names keeps the old ones until a full refresh).
with

web_events as (

    select user_id, anonymous_id, email, first_name, last_name, occurred_at, _ingested_at
    from {{ ref('stg_web__events') }}

),

esp_events as (

    select lower(trim(email)) as address, email, occurred_at, _ingested_at
    from {{ ref('stg_esp__events') }}
    where email is not null

),

{% if is_incremental() -%}
watermark as (

    select coalesce(max(_ingested_at), cast('1900-01-01' as timestamp)) as ingested_at
    from {{ this }}

),

fresh_web as (

    select user_id, anonymous_id
    from web_events
    where _ingested_at > (select ingested_at from watermark)

),

user_events as (

    select *
    from web_events
    where user_id in (select fresh_web.user_id from fresh_web)

),

anonymous_events as (

    select *
    from web_events
    where anonymous_id in (select fresh_web.anonymous_id from fresh_web)

),

fresh_esp as (

    select address
    from esp_events
    where _ingested_at > (select ingested_at from watermark)

),

address_events as (

    select *
    from esp_events
    where address in (select fresh_esp.address from fresh_esp)

),
{%- else %}
user_events as (

    select * from web_events where user_id is not null

),

anonymous_events as (

    select * from web_events where anonymous_id is not null

),

address_events as (

    select * from esp_events

),
{%- endif %}

web_users as (

    select
        'web_user' as source,
        user_id as source_record_id,
        max(email) as email,
        max(first_name) as first_name,
        max(last_name) as last_name,
        cast(null as varchar) as linked_user_id,
        max(occurred_at) as observed_at,
        max(_ingested_at) as _ingested_at
    from user_events
    group by user_id

),

-- anonymousId -> userId, taken from the events that carry both (identify and later events).
anonymous_ids as (

    select
        'web_anonymous' as source,
        anonymous_id as source_record_id,
        cast(null as varchar) as email,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        min(user_id) as linked_user_id,
        max(occurred_at) as observed_at,
        max(_ingested_at) as _ingested_at
    from anonymous_events
    group by anonymous_id

),

addresses as (

    select
        'esp' as source,
        address as source_record_id,
        min(email) as email,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        cast(null as varchar) as linked_user_id,
        max(occurred_at) as observed_at,
        max(_ingested_at) as _ingested_at
    from address_events
    group by address

),

final as (

    select * from web_users
    union all
    select * from anonymous_ids
    union all
    select * from addresses

)

select * from final
