{{ config(meta={
    'description': 'Added a product to the cart and did not buy it within 24 hours.',
    'owner': 'ecommerce',
    'priority': 80,
    'kind': 'marketing',
    'segment_tags': ['Shopper', 'Shopper > CartAbandoner'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where cart_items_count > 0
        and last_cart_added_at <= {{ dbt.dateadd('hour', -24, as_of()) }}
        and last_cart_added_at >= {{ days_before(as_of(), 30) }}

)

select * from final
