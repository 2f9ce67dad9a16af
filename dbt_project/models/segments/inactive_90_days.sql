{{ config(meta={
    'description': 'No open, click or visit in the last 90 days (last-chance re-engagement).',
    'owner': 'lifecycle-marketing',
    'priority': 20,
    'kind': 'marketing',
    'segment_tags': ['Lifecycle', 'Lifecycle > Inactive'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where {{ last_activity_at() }} < {{ days_before(as_of(), 90) }}

)

select * from final
