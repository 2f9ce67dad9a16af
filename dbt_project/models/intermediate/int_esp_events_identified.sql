with

events as (

    select * from {{ ref('stg_esp__events') }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}
    where source = 'esp'

),

final as (

    select
        events.*,
        identities.customer_id
    from events
    inner join identities
        on identities.source_record_id = lower(trim(events.email))
    where events.occurred_at < {{ as_of() }}

)

select * from final
