{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="{{ drop_retired_customers() }}",
) }}

-- Behavioural layer from web events: page views and sessions (30-minute inactivity gap) over
-- 7/30 days, the top category of the last 30 days, the five most recently viewed products,
-- and the cart: products added since the customer's last completed order. One row per
-- customer (null figures: no web events), kept incrementally: see macros/incremental.sql.
with

customers as (

    select * from {{ ref('int_customers_fingerprinted') }}

),

scope as (

    {{ customers_to_rebuild(ref('int_web_events_identified'), [7, 30]) }}

),

events as (

    select identified.*
    from {{ ref('int_web_events_identified') }} as identified
    {% if is_incremental() -%}
    inner join scope on scope.customer_id = identified.customer_id
    {%- endif %}
    where identified.customer_id is not null

),

sessionised as (

    select
        customer_id,
        occurred_at,
        case
            when lag(occurred_at) over (partition by customer_id order by occurred_at) is null then 1
            when {{ days_between('lag(occurred_at) over (partition by customer_id order by occurred_at)', 'occurred_at') }} > 0 then 1
            when occurred_at > {{ dbt.dateadd('minute', 30, 'lag(occurred_at) over (partition by customer_id order by occurred_at)') }} then 1
            else 0
        end as is_session_start
    from events

),

sessions as (

    select
        customer_id,
        sum(case when is_session_start = 1 and occurred_at >= {{ days_before(as_of(), 7) }} then 1 else 0 end) as sessions_7d,
        sum(case when is_session_start = 1 and occurred_at >= {{ days_before(as_of(), 30) }} then 1 else 0 end) as sessions_30d
    from sessionised
    group by customer_id

),

activity as (

    select
        customer_id,
        sum(case when event_type = 'page' and occurred_at >= {{ days_before(as_of(), 7) }} then 1 else 0 end) as page_views_7d,
        sum(case when event_type = 'page' and occurred_at >= {{ days_before(as_of(), 30) }} then 1 else 0 end) as page_views_30d,
        max(occurred_at) as last_seen_at,
        max(_ingested_at) as newest_ingested_at,
        max(case when event_name = 'Order Completed' then occurred_at end) as last_web_order_at
    from events
    group by customer_id

),

category_ranked as (

    select
        customer_id,
        category,
        row_number() over (partition by customer_id order by count(*) desc, category) as category_rank
    from events
    where category is not null and occurred_at >= {{ days_before(as_of(), 30) }}
    group by customer_id, category

),

viewed_ranked as (

    select
        customer_id,
        product_name,
        max(occurred_at) as last_viewed_at,
        row_number() over (partition by customer_id order by max(occurred_at) desc, product_name) as view_rank
    from events
    where event_name = 'Product Viewed' and product_name is not null
    group by customer_id, product_name

),

recently_viewed as (

    select
        customer_id,
        string_agg(product_name, ', ' order by view_rank) as recently_viewed_products
    from viewed_ranked
    where view_rank <= 5
    group by customer_id

),

cart_adds as (

    select
        events.customer_id,
        events.product_name,
        max(events.occurred_at) as added_at
    from events
    inner join activity on activity.customer_id = events.customer_id
    where events.event_name = 'Product Added'
        and (activity.last_web_order_at is null or events.occurred_at > activity.last_web_order_at)
    group by events.customer_id, events.product_name

),

cart as (

    select
        customer_id,
        string_agg(product_name, ', ' order by added_at desc, product_name asc) as cart_items,
        count(*) as cart_items_count,
        max(added_at) as last_cart_added_at
    from cart_adds
    group by customer_id

),

aggregated as (

    select
        activity.customer_id,
        activity.newest_ingested_at,
        activity.page_views_7d,
        activity.page_views_30d,
        coalesce(sessions.sessions_7d, 0) as sessions_7d,
        coalesce(sessions.sessions_30d, 0) as sessions_30d,
        category_ranked.category as top_category,
        recently_viewed.recently_viewed_products,
        cart.cart_items,
        coalesce(cart.cart_items_count, 0) as cart_items_count,
        cart.last_cart_added_at,
        activity.last_web_order_at,
        activity.last_seen_at
    from activity
    left join sessions on sessions.customer_id = activity.customer_id
    left join category_ranked
        on category_ranked.customer_id = activity.customer_id and category_ranked.category_rank = 1
    left join recently_viewed on recently_viewed.customer_id = activity.customer_id
    left join cart on cart.customer_id = activity.customer_id

),

final as (

    select
        customers.customer_id,
        aggregated.page_views_7d,
        aggregated.page_views_30d,
        aggregated.sessions_7d,
        aggregated.sessions_30d,
        aggregated.top_category,
        aggregated.recently_viewed_products,
        aggregated.cart_items,
        aggregated.cart_items_count,
        aggregated.last_cart_added_at,
        aggregated.last_web_order_at,
        aggregated.last_seen_at,
        {{ rebuild_bookkeeping('customers', 'aggregated.newest_ingested_at') }}
    from customers
    inner join scope on scope.customer_id = customers.customer_id
    left join aggregated on aggregated.customer_id = customers.customer_id

)

select * from final
