with

source as (

    select * from {{ source('raw', 'esp__events') }}

),

renamed as (

    select
        cast(sg_event_id as varchar) as esp_event_id,
        nullif(trim(email), '') as email,
        lower(event) as event_type,
        sg_message_id as esp_message_id,
        url as clicked_url,
        reason as bounce_reason,
        type as bounce_type,
        asm_group_id,
        category,
        cast("timestamp" as timestamp) as occurred_at,
        row_number() over (partition by sg_event_id order by _loaded_at desc) as version_rank
    from source

),

final as (

    select * from renamed where version_rank = 1

)

select * from final
