{{ config(meta={
    'description': 'Joined in the last 14 days: the welcome series audience.',
    'owner': 'lifecycle-marketing',
    'priority': 70,
    'kind': 'marketing',
    'segment_tags': ['Lifecycle', 'Lifecycle > New'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where crm_created_at >= {{ days_before(as_of(), 14) }}
        and crm_created_at < {{ as_of() }}

)

select * from final
