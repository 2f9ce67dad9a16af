{{ config(
    materialized='incremental',
    unique_key='message_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
) }}

with

{{ changed_versions(source('sends', 'messages'), 'message_key', 'message_key') }}

renamed as (

    select
        cast(message_key as varchar) as message_key,
        campaign_id,
        nullif(flow_step, '') as flow_step,
        customer_id,
        experiment_id,
        variant,
        status,
        cast(run_date as date) as run_date,
        cast(sent_at as timestamp) as sent_at,
        cast(nullif(send_at, '') as timestamp) as send_at,
        cast(attribution_days as integer) as attribution_days,
        {{ ingested_at() }},
        {{ staged_at() }},
        {{ version_rank('message_key') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
