with

source as (

    select * from {{ source('billing', 'subscriptions') }}

),

renamed as (

    select
        cast(id as varchar) as subscription_id,
        customer as billing_customer_id,
        lower(status) as status,
        {{ json_text('items', ['data', 0, 'price', 'id']) }} as plan_id,
        {{ json_text('items', ['data', 0, 'price', 'nickname']) }} as plan_name,
        {{ minor_to_major(json_text('items', ['data', 0, 'price', 'unit_amount']), 'currency') }} as plan_amount,
        {{ json_text('items', ['data', 0, 'price', 'recurring', 'interval']) }} as plan_interval,
        lower(currency) as currency,
        cast(created as timestamp) as created_at,
        cast(current_period_end as timestamp) as current_period_end_at,
        cast(canceled_at as timestamp) as canceled_at,
        {{ version_rank('id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
