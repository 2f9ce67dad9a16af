with

source as (

    select * from {{ source('raw', 'crm__tickets') }}

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
        row_number() over (
            partition by ticket_id
            order by cast(updated_at as timestamp) desc nulls last, _loaded_at desc
        ) as version_rank
    from source

),

final as (

    select * from renamed where version_rank = 1

)

select * from final
