with

source as (

    select * from {{ source('raw', 'billing__charges') }}

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
        row_number() over (partition by id order by _loaded_at desc) as version_rank
    from source

),

final as (

    select * from renamed where version_rank = 1

)

select * from final
