with

source as (

    select * from {{ source('billing', 'customers') }}

),

renamed as (

    select
        cast(id as varchar) as billing_customer_id,
        nullif(trim(email), '') as email,
        nullif(trim(name), '') as full_name,
        nullif(trim(phone), '') as phone,
        lower(currency) as currency,
        nullif({{ json_text('metadata', ['crm_contact_id']) }}, '') as crm_contact_id,
        nullif({{ json_text('address', ['city']) }}, '') as city,
        upper(nullif({{ json_text('address', ['country']) }}, '')) as country,
        coalesce(deleted = 'true', false) as is_deleted,
        cast(created as timestamp) as created_at,
        {{ ingested_at() }},
        {{ version_rank('id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
