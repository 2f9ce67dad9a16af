{{ config(
    materialized='incremental',
    unique_key='esp_event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=["update {{ this }} set email_key = lower(email) where email_key is null and email is not null"],
) }}

-- email_key is the address as the ESP's identity records key it (lower-cased): the
-- identity models link and relink events by it without computing it over every event.
-- The post-hook fills it in for the events a build staged before the column existed (an
-- upgrade); afterwards it finds nothing, and costs nothing (DuckDB skips every row group
-- whose statistics say the column holds no null).
with

{{ changed_versions(source('esp', 'events'), 'sg_event_id', 'esp_event_id') }}

renamed as (

    select
        cast(sg_event_id as varchar) as esp_event_id,
        nullif(trim(email), '') as email,
        lower(nullif(trim(email), '')) as email_key,
        lower(event) as event_type,
        sg_message_id as esp_message_id,
        url as clicked_url,
        reason as bounce_reason,
        type as bounce_type,
        asm_group_id,
        category,
        lower(nullif(trim(frequency), '')) as email_frequency,
        nullif(message_key, '') as message_key,
        nullif(campaign_id, '') as campaign_id,
        nullif(variant, '') as variant,
        coalesce(lower(sg_machine_open) in ('true', '1'), false) as is_machine_open,
        cast("timestamp" as timestamp) as occurred_at,
        {{ ingested_at() }},
        {{ staged_at() }},
        {{ first_ingested_at('sg_event_id') }},
        {{ version_rank('sg_event_id') }}
    from source
    {% if is_incremental() -%}
    left join previously_staged on previously_staged.staged_key = cast(source.sg_event_id as varchar)
    {%- endif %}

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
