with

source as (

    select * from {{ source('billing', 'charges') }}

),

renamed as (

    select
        cast(id as varchar) as charge_id,
        customer as billing_customer_id,
        {{ minor_to_major('amount', 'currency') }} as amount,
        {{ minor_to_major("coalesce(amount_refunded, '0')", 'currency') }} as amount_refunded,
        lower(currency) as currency,
        lower(status) as status,
        invoice as invoice_id,
        nullif({{ json_text('metadata', ['order_id']) }}, '') as order_id,
        cast(created as timestamp) as created_at,
        {{ version_rank('id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
