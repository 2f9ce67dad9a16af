-- Succeeded billing charges up to the data interval's end, with the customer they belong
-- to. Orders (int_orders_unioned) and refunds (the transaction layer) both read it.
with

charges as (

    select * from {{ ref('stg_billing__charges') }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        charges.*,
        identities.customer_id
    from charges
    inner join identities
        on identities.source = 'billing'
        and identities.source_record_id = charges.billing_customer_id
    where charges.status = 'succeeded' and charges.created_at < {{ as_of() }}

)

select * from final
