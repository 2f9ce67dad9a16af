{{ config(meta={
    'description': 'Engagement score of 8/10 or more and over 500 spent in the last 6 months (customer currency).',
    'owner': 'crm-team',
    'priority': 90,
    'kind': 'marketing',
    'segment_tags': ['LoyalCustomer', 'LoyalCustomer > HighSpender'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where engagement_score >= 8
        and revenue_180d > 500

)

select * from final
