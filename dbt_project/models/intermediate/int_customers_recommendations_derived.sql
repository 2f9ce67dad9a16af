-- Recommendations per customer, best first, never a product they already bought:
--   1. viewed but not bought (most recently viewed first),
--   2. bought together with what they bought (co-purchase),
--   3. best sellers of their top category (category affinity).
-- recommended_products holds the first three, comma-separated.
with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

events as (

    select * from {{ ref('int_web_events_identified') }}
    where customer_id is not null

),

order_items as (

    select items.*, coalesce(by_user.customer_id, by_anonymous.customer_id) as customer_id
    from {{ ref('stg_web__order_items') }} as items
    left join identities as by_user
        on by_user.source = 'web_user' and by_user.source_record_id = items.user_id
    left join identities as by_anonymous
        on by_anonymous.source = 'web_anonymous' and by_anonymous.source_record_id = items.anonymous_id
    where items.occurred_at < {{ as_of() }}

),

bought as (

    select distinct customer_id, product_name from order_items where customer_id is not null

),

viewed as (

    select customer_id, product_name, max(occurred_at) as last_viewed_at
    from events
    where event_name = 'Product Viewed' and product_name is not null
    group by customer_id, product_name

),

co_purchased as (

    select bought.customer_id, co.co_product_name as product_name, max(co.orders_together) as strength
    from bought
    inner join {{ ref('int_products_co_purchased') }} as co on co.product_name = bought.product_name
    where co.co_rank <= 3
    group by bought.customer_id, co.co_product_name

),

best_sellers as (

    select
        category,
        product_name,
        count(distinct order_id) as orders,
        row_number() over (
            partition by category order by count(distinct order_id) desc, product_name asc
        ) as category_rank
    from {{ ref('stg_web__order_items') }}
    group by category, product_name

),

-- How far down its category's best sellers a customer may have to read: three, plus one
-- for each product of theirs that is bought or already a candidate (skipped there; a
-- product in two of the lists counts twice, which only reads further). With a real
-- catalogue, every product of the category for every customer would be millions of
-- candidates per category.
skipped as (

    select customer_id, count(*) as products
    from (
        select customer_id from bought
        union all
        select customer_id from viewed
        union all
        select customer_id from co_purchased
    ) as known
    group by customer_id

),

top_category as (

    select customer_id, top_category from {{ ref('int_customers_behaviour_aggregated') }}
    where top_category is not null

),

candidates as (

    select customer_id, product_name, 1 as source_rank, last_viewed_at as recency, 0 as strength, 'viewed_not_bought' as reason
    from viewed
    union all
    select customer_id, product_name, 2, cast(null as timestamp), strength, 'co_purchase'
    from co_purchased
    union all
    select top_category.customer_id, best_sellers.product_name, 3, cast(null as timestamp), best_sellers.orders, 'category_affinity'
    from top_category
    left join skipped on skipped.customer_id = top_category.customer_id
    inner join best_sellers
        on best_sellers.category = top_category.top_category
        and best_sellers.category_rank <= 3 + coalesce(skipped.products, 0)

),

ranked as (

    select
        candidates.*,
        row_number() over (
            partition by candidates.customer_id, candidates.product_name
            order by candidates.source_rank
        ) as duplicate_rank
    from candidates
    where not exists (
            select 1 from bought
            where bought.customer_id = candidates.customer_id
                and bought.product_name = candidates.product_name
        )

),

ordered as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by source_rank asc, recency desc nulls last, strength desc, product_name asc
        ) as recommendation_rank
    from ranked
    where duplicate_rank = 1

),

final as (

    select
        customer_id,
        string_agg(product_name, ', ' order by recommendation_rank) as recommended_products,
        max(case when recommendation_rank = 1 then reason end) as top_recommendation_reason,
        string_agg(case when reason = 'viewed_not_bought' then product_name end, ', ' order by recommendation_rank) as viewed_not_bought_products
    from ordered
    where recommendation_rank <= 3
    group by customer_id

)

select * from final
