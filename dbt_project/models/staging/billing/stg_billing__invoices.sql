with

source as (

    select * from {{ source('billing', 'invoices') }}

),

renamed as (

    select
        cast(id as varchar) as invoice_id,
        customer as billing_customer_id,
        subscription as subscription_id,
        lower(status) as status,
        {{ minor_to_major('amount_due', 'currency') }} as amount_due,
        {{ minor_to_major('amount_paid', 'currency') }} as amount_paid,
        lower(currency) as currency,
        cast(created as timestamp) as created_at,
        {{ version_rank('id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
