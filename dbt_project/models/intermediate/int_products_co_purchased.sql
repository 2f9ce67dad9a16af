-- Products bought together: for each product, the others that appear in the same orders,
-- ranked by how many orders hold both (ties by name). Feeds the recommendations.
with

items as (

    select distinct order_id, product_id, product_name from {{ ref('stg_web__order_items') }}

),

pairs as (

    select
        a.product_name,
        b.product_name as co_product_name,
        count(distinct a.order_id) as orders_together
    from items as a
    inner join items as b on b.order_id = a.order_id and b.product_id <> a.product_id
    group by a.product_name, b.product_name

),

final as (

    select
        *,
        row_number() over (partition by product_name order by orders_together desc, co_product_name asc) as co_rank
    from pairs

)

select * from final
