with

source as (

    select * from {{ source('raw', 'billing__invoices') }}

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
        row_number() over (partition by id order by _loaded_at desc) as version_rank
    from source

),

final as (

    select * from renamed where version_rank = 1

)

select * from final
