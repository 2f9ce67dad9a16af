{{ config(meta={
    'description': 'Opens fell by at least a quarter against the previous 30 days.',
    'owner': 'lifecycle-marketing',
    'priority': 35,
    'kind': 'marketing',
    'segment_tags': ['Lifecycle', 'Lifecycle > AtRisk'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where engagement_trend = 'declining'

)

select * from final
