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
-- Kept incrementally. Every aggregate is a min or a max, so an identity whose events
-- ingested since the table's newest input are all new events is its stored row, read as
-- one more event, aggregated with those new events: a day's sends reach a third of the ESP
-- addresses, and this reads their new events, not all their events. An identity with a
-- re-delivered event among them (first ingested before; see first_ingested_at) is
-- aggregated again over all its events, as the re-delivery may have changed a value. The
-- result equals aggregating every event, as long as a re-delivered event keeps its user
-- id, anonymous id and address: the identity a changed re-delivery no longer names keeps
-- the old values until a full refresh.
--
-- The incremental branch reads the staged events where it needs them instead of through a
-- shared CTE: DuckDB materializes a CTE read twice, which cost a pass over every event.
{%- set web_columns = 'user_id, anonymous_id, email, first_name, last_name, occurred_at, _ingested_at' %}
{%- set esp_columns = 'email_key as address, email, occurred_at, _ingested_at' %}
with

{% if is_incremental() -%}
watermark as (

    select coalesce(max(_ingested_at), cast('1900-01-01' as timestamp)) as ingested_at
    from {{ this }}

),

fresh_web as (

    select
        {{ web_columns }},
        coalesce(_first_ingested_at <= (select ingested_at from watermark), true) as is_replayed
    from {{ ref('stg_web__events') }}
    where _ingested_at > (select ingested_at from watermark)

),

fresh_esp as (

    select
        {{ esp_columns }},
        coalesce(_first_ingested_at <= (select ingested_at from watermark), true) as is_replayed
    from {{ ref('stg_esp__events') }}
    where email is not null and _ingested_at > (select ingested_at from watermark)

),

-- Every identity with a fresh event, and whether one of them is a re-delivery.
fresh_identities as (

    select source, id, max(case when is_replayed then 1 else 0 end) = 1 as is_replayed
    from (
        select 'web_user' as source, user_id as id, is_replayed from fresh_web where user_id is not null
        union all
        select 'web_anonymous', anonymous_id, is_replayed from fresh_web where anonymous_id is not null
        union all
        select 'esp', address, is_replayed from fresh_esp
    ) as fresh
    group by source, id

),

-- The stored rows of the identities merged with their new events, read as events.
merged as (

    select stored.*
    from {{ this }} as stored
    inner join fresh_identities as fresh
        on fresh.source = stored.source and fresh.id = stored.source_record_id
    where not fresh.is_replayed

),

user_events as (

    select {{ web_columns }}
    from {{ ref('stg_web__events') }}
    where user_id in (select id from fresh_identities where source = 'web_user' and is_replayed)
    union all
    select {{ web_columns }}
    from fresh_web
    where user_id in (select id from fresh_identities where source = 'web_user' and not is_replayed)
    union all
    select source_record_id, null, email, first_name, last_name, observed_at, _ingested_at
    from merged where source = 'web_user'

),

anonymous_events as (

    select {{ web_columns }}
    from {{ ref('stg_web__events') }}
    where anonymous_id in (select id from fresh_identities where source = 'web_anonymous' and is_replayed)
    union all
    select {{ web_columns }}
    from fresh_web
    where anonymous_id in (select id from fresh_identities where source = 'web_anonymous' and not is_replayed)
    union all
    select linked_user_id, source_record_id, null, null, null, observed_at, _ingested_at
    from merged where source = 'web_anonymous'

),

address_events as (

    select {{ esp_columns }}
    from {{ ref('stg_esp__events') }}
    where email_key in (select id from fresh_identities where source = 'esp' and is_replayed)
    union all
    select address, email, occurred_at, _ingested_at
    from fresh_esp
    where address in (select id from fresh_identities where source = 'esp' and not is_replayed)
    union all
    select source_record_id, email, observed_at, _ingested_at
    from merged where source = 'esp'

),
{%- else %}
web_events as (

    select {{ web_columns }}
    from {{ ref('stg_web__events') }}

),

user_events as (

    select * from web_events where user_id is not null

),

anonymous_events as (

    select * from web_events where anonymous_id is not null

),

address_events as (

    select {{ esp_columns }}
    from {{ ref('stg_esp__events') }}
    where email is not null

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
