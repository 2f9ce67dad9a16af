{{ config(meta={
    'description': 'Three or more orders in the last 90 days.',
    'owner': 'ecommerce',
    'priority': 60,
    'kind': 'marketing',
    'segment_tags': ['LoyalCustomer', 'LoyalCustomer > FrequentBuyer'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where orders_90d >= 3

)

select * from final
