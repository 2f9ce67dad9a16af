{{ config(meta={
    'description': 'Bought before but not in the last 60 days (lapsed purchasers).',
    'owner': 'ecommerce',
    'priority': 50,
    'kind': 'marketing',
    'segment_tags': ['Shopper', 'Shopper > Lapsed'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where orders_count > 0
        and last_order_at < {{ days_before(as_of(), 60) }}

)

select * from final
