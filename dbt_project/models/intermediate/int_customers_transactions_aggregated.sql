-- Transaction layer. Orders come from int_orders_unioned (web orders merged with billing
-- charges); subscription revenue comes from paid invoices.
-- RFM scores are quintiles (5 = best) among customers with at least one order.
-- predicted_ltv = revenue so far + 12 months of MRR + a year of orders at the customer's
-- observed monthly order rate and average order value (a deliberately simple model).
with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

orders as (

    select * from {{ ref('int_orders_unioned') }}

),

charges as (

    select * from {{ ref('int_charges_identified') }}

),

order_totals as (

    select
        customer_id,
        count(*) as orders_count,
        sum(amount) as order_revenue,
        sum(case when ordered_at >= {{ days_before(as_of(), 180) }} then amount else 0 end) as revenue_180d,
        sum(case when ordered_at >= {{ days_before(as_of(), 90) }} then 1 else 0 end) as orders_90d,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        max(currency) as currency
    from orders
    where customer_id is not null
    group by customer_id

),

invoice_totals as (

    select
        identities.customer_id,
        sum(invoices.amount_paid) as subscription_revenue
    from {{ ref('stg_billing__invoices') }} as invoices
    inner join identities
        on identities.source = 'billing'
        and identities.source_record_id = invoices.billing_customer_id
    where invoices.status = 'paid' and invoices.created_at < {{ as_of() }}
    group by identities.customer_id

),

refund_totals as (

    select
        charges.customer_id,
        count(*) as refunds_count,
        sum(refunds.amount) as refunded_amount
    from {{ ref('stg_billing__refunds') }} as refunds
    inner join charges on charges.charge_id = refunds.charge_id
    where refunds.created_at < {{ as_of() }}
    group by charges.customer_id

),

subscriptions_ranked as (

    select
        identities.customer_id,
        subs.plan_name,
        subs.status,
        subs.currency,
        case
            when subs.status in ('active', 'past_due') and subs.plan_interval = 'year' then subs.plan_amount / 12
            when subs.status in ('active', 'past_due') then subs.plan_amount
            else 0
        end as mrr,
        row_number() over (
            partition by identities.customer_id
            order by
                case when subs.status in ('active', 'trialing', 'past_due') then 0 else 1 end,
                subs.created_at desc
        ) as subscription_rank
    from {{ ref('stg_billing__subscriptions') }} as subs
    inner join identities
        on identities.source = 'billing'
        and identities.source_record_id = subs.billing_customer_id
    where subs.created_at < {{ as_of() }}

),

customers as (

    select customer_id from order_totals
    union
    select customer_id from invoice_totals
    union
    select customer_id from subscriptions_ranked

),

joined as (

    select
        customers.customer_id,
        coalesce(o.orders_count, 0) as orders_count,
        coalesce(o.orders_90d, 0) as orders_90d,
        coalesce(o.order_revenue, 0) as order_revenue,
        coalesce(o.revenue_180d, 0) as revenue_180d,
        coalesce(i.subscription_revenue, 0) as subscription_revenue,
        coalesce(r.refunds_count, 0) as refunds_count,
        coalesce(r.refunded_amount, 0) as refunded_amount,
        o.first_order_at,
        o.last_order_at,
        s.plan_name as subscription_plan,
        s.status as subscription_status,
        coalesce(s.mrr, 0) as mrr,
        coalesce(o.currency, s.currency) as currency
    from customers
    left join order_totals as o on o.customer_id = customers.customer_id
    left join invoice_totals as i on i.customer_id = customers.customer_id
    left join refund_totals as r on r.customer_id = customers.customer_id
    left join subscriptions_ranked as s
        on s.customer_id = customers.customer_id and s.subscription_rank = 1

),

final as (

    select
        *,
        order_revenue + subscription_revenue - refunded_amount as net_revenue,
        case when orders_count > 0 then order_revenue / orders_count end as average_order_value,
        case when orders_count > 0 then ntile(5) over (
                    partition by case when orders_count > 0 then 1 else 0 end order by last_order_at
                )
        end as rfm_recency,
        case when orders_count > 0 then ntile(5) over (
                    partition by case when orders_count > 0 then 1 else 0 end order by orders_count
                )
        end as rfm_frequency,
        case when orders_count > 0 then ntile(5) over (
                    partition by case when orders_count > 0 then 1 else 0 end order by order_revenue
                )
        end as rfm_monetary,
        order_revenue + subscription_revenue - refunded_amount
        + 12 * mrr
        + case
            when orders_count > 0
                then
                    (order_revenue / orders_count)
                    * orders_count * 30.0 / greatest({{ days_between('first_order_at', as_of()) }}, 30)
                    * 12
            else 0
        end as predicted_ltv
    from joined

)

select * from final
