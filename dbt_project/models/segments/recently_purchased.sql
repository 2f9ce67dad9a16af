{{ config(meta={
    'description': 'Bought in the last 14 days; win-back and "we miss you" campaigns exclude them.',
    'owner': 'ecommerce',
    'priority': 10,
    'kind': 'marketing',
    'segment_tags': ['Shopper', 'Shopper > RecentBuyer'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where last_order_at >= {{ days_before(as_of(), 14) }}

)

select * from final
