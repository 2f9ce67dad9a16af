with

source as (

    select * from {{ source('crm', 'tickets') }}

),

renamed as (

    select
        cast(ticket_id as varchar) as ticket_id,
        nullif(trim(contact_id), '') as contact_id,
        nullif(trim(email), '') as email,
        subject,
        body,
        nullif(trim(product), '') as product,
        lower(status) as status,
        lower(priority) as priority,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        {{ version_rank('ticket_id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
