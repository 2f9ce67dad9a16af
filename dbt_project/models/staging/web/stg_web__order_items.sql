-- One row per product line of an "Order Completed" event (properties.products[]).
with

events as (

    select * from {{ ref('stg_web__events') }}
    where event_name = 'Order Completed'

),

source as (

    select "messageId" as event_id, properties
    from {{ source('web', 'events') }}
    where event = 'Order Completed'

),

items as (

    select
        source.event_id,
        {{ json_item_text('product_id') }} as product_id,
        {{ json_item_text('name') }} as product_name,
        {{ json_item_text('category') }} as category,
        cast({{ json_item_text('price') }} as numeric(18, 2)) as price
    from source
    {{ join_json_array('source.properties', 'products') }}

),

final as (

    select distinct
        events.event_id,
        events.order_id,
        events.anonymous_id,
        events.user_id,
        events.occurred_at,
        items.product_id,
        items.product_name,
        items.category,
        items.price
    from items
    inner join events on events.event_id = items.event_id
    where items.product_id is not null

)

select * from final
