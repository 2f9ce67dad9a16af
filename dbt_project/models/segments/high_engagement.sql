{{ config(meta={
    'description': 'Opened at least 3 emails in the last 7 days.',
    'owner': 'lifecycle-marketing',
    'priority': 40,
    'kind': 'marketing',
    'segment_tags': ['Engaged'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where opens_7d >= 3

)

select * from final
