{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
) }}

with

{{ changed_versions(source('web', 'events'), '"messageId"', 'event_id') }}

renamed as (

    select
        cast("messageId" as varchar) as event_id,
        lower("type") as event_type,
        event as event_name,
        name as page_name,
        nullif("anonymousId", '') as anonymous_id,
        nullif("userId", '') as user_id,
        nullif(trim({{ json_text('traits', ['email']) }}), '') as email,
        nullif({{ json_text('traits', ['firstName']) }}, '') as first_name,
        nullif({{ json_text('traits', ['lastName']) }}, '') as last_name,
        {{ json_text('properties', ['url']) }} as page_url,
        {{ json_text('properties', ['product_id']) }} as product_id,
        {{ json_text('properties', ['name']) }} as product_name,
        {{ json_text('properties', ['category']) }} as category,
        {{ json_text('properties', ['order_id']) }} as order_id,
        cast({{ json_text('properties', ['revenue']) }} as numeric(18, 2)) as revenue,
        lower({{ json_text('properties', ['currency']) }}) as currency,
        cast("timestamp" as timestamp) as occurred_at,
        cast("receivedAt" as timestamp) as received_at,
        {{ ingested_at() }},
        {{ staged_at() }},
        {{ first_ingested_at('"messageId"') }},
        {{ version_rank('"messageId"') }}
    from source
    {% if is_incremental() -%}
    left join previously_staged on previously_staged.staged_key = cast(source."messageId" as varchar)
    {%- endif %}

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
