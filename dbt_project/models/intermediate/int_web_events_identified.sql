-- Web events with the customer they belong to (via userId, else the anonymous id's link).
with

events as (

    select * from {{ ref('stg_web__events') }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        events.*,
        coalesce(by_user.customer_id, by_anonymous.customer_id) as customer_id
    from events
    left join identities as by_user
        on by_user.source = 'web_user' and by_user.source_record_id = events.user_id
    left join identities as by_anonymous
        on by_anonymous.source = 'web_anonymous'
        and by_anonymous.source_record_id = events.anonymous_id
    where events.occurred_at < {{ as_of() }}

)

select * from final
