{{ config(meta={
    'description': 'No open, click or visit in the last 60 days (re-engagement).',
    'owner': 'lifecycle-marketing',
    'priority': 30,
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
    where {{ last_activity_at() }} < {{ days_before(as_of(), 60) }}

)

select * from final
