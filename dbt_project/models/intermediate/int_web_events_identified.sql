{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=["{{ delete_invisible_events() }}", "{{ linked_fingerprints_update() }}"],
) }}

-- Web events with the customer they belong to (via userId, else the anonymous id's link).
-- Kept incrementally: a build links again only the events that may have changed (see
-- events_to_relink in macros/incremental.sql).
with

{{ changed_customers_cte() }}

events as (

    select * from {{ ref('stg_web__events') }}
    where occurred_at < {{ as_of() }}
    {{ events_to_relink('event_id', [('web_user', 'user_id'), ('web_anonymous', 'anonymous_id')]) }}  -- noqa: LT02

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

fingerprints as (

    select * from {{ ref('int_customers_fingerprinted') }}

),

linked as (

    select
        events.*,
        coalesce(by_user.customer_id, by_anonymous.customer_id) as customer_id
    from events
    left join identities as by_user
        on by_user.source = 'web_user' and by_user.source_record_id = events.user_id
    left join identities as by_anonymous
        on by_anonymous.source = 'web_anonymous'
        and by_anonymous.source_record_id = events.anonymous_id

),

final as (

    select
        linked.*,
        fingerprints.identity_fingerprint as _identity_fingerprint,
        {{ as_of() }} as _as_of
    from linked
    left join fingerprints on fingerprints.customer_id = linked.customer_id

)

select * from final
