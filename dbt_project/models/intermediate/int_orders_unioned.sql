-- Every order once: web "Order Completed" events merged with billing charges on order_id
-- (billing's amount wins), with the customer it belongs to. The transaction layer and the
-- campaign results (conversions) read it.
with

web_orders as (

    select
        order_id,
        min(customer_id) as customer_id,
        max(revenue) as amount,
        max(currency) as currency,
        min(occurred_at) as ordered_at
    from {{ ref('int_web_events_identified') }}
    where event_name = 'Order Completed' and order_id is not null
    group by order_id

),

charges as (

    select * from {{ ref('int_charges_identified') }}

),

orders as (

    select
        coalesce(charges.order_id, web_orders.order_id) as order_id,
        coalesce(charges.customer_id, web_orders.customer_id) as customer_id,
        coalesce(charges.amount, web_orders.amount, 0) as amount,
        coalesce(charges.currency, web_orders.currency) as currency,
        coalesce(charges.created_at, web_orders.ordered_at) as ordered_at
    from web_orders
    full outer join (select * from charges where order_id is not null) as charges
        on charges.order_id = web_orders.order_id

),

final as (

    select * from orders

)

select * from final
