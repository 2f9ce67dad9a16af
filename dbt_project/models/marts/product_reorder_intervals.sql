-- Each product's typical re-order interval: the median number of days between one
-- customer's consecutive orders of the same product, where at least three such repeats
-- were seen. Replenishment flows time their reminder from it.
with

items as (

    select distinct user_id, order_id, product_name, occurred_at
    from {{ ref('stg_web__order_items') }}
    where user_id is not null and product_name is not null

),

ordered as (

    select
        product_name,
        occurred_at,
        lag(occurred_at) over (
            partition by user_id, product_name order by occurred_at
        ) as previous_at
    from items

),

gaps as (

    select
        product_name,
        {{ days_between('previous_at', 'occurred_at') }} as gap_days
    from ordered
    where previous_at is not null

),

final as (

    select
        product_name,
        cast(percentile_cont(0.5) within group (order by gap_days) as numeric(8, 1))
            as reorder_days,
        count(*) as repeats
    from gaps
    where gap_days > 0
    group by product_name
    having count(*) >= 3

)

select * from final
