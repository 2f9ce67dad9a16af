{{ config(
    materialized='incremental',
    unique_key='esp_event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=["{{ delete_invisible_events(unlinked=true) }}", "{{ linked_fingerprints_update() }}"],
) }}

-- ESP events of known addresses, with their customer. Kept incrementally: a build links
-- again only the events that may have changed (events_to_relink in macros/incremental.sql);
-- an event whose address lost its customer is deleted after the merge.
with

{{ changed_customers_cte() }}

events as (

    select * from {{ ref('stg_esp__events') }}
    where occurred_at < {{ as_of() }}
    {{ events_to_relink('esp_event_id', [('esp', 'email_key')]) }}  -- noqa: LT02

),

identities as (

    select * from {{ ref('int_identities_resolved') }}
    where source = 'esp'

),

fingerprints as (

    select * from {{ ref('int_customers_fingerprinted') }}

),

linked as (

    select
        events.*,
        identities.customer_id
    from events
    -- incremental: kept unlinked, so the merge replaces the old row and the post-hook drops it
    {{ 'left' if is_incremental() else 'inner' }} join identities
        on identities.source_record_id = events.email_key

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
