{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="{{ delete_order_items_no_longer_orders() }}",
) }}

-- One row per product line of an "Order Completed" event (properties.products[]), with
-- the products of every loaded version of the event (as the raw table keeps them).
-- Kept incrementally: a build parses only the orders staged since the newest it holds
-- (new or delivered again), so the products JSON of the whole history is not read again
-- each day; an event whose newest version is no longer an order loses its rows after the
-- merge.
with

events as (

    select * from {{ ref('stg_web__events') }}
    where event_name = 'Order Completed'
    {{ staged_after_kept() }}  -- noqa: LT02

),

source as (

    select "messageId" as event_id, properties
    from {{ source('web', 'events') }}
    where event = 'Order Completed'
        and cast("messageId" as varchar) in (select events.event_id from events)

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
        items.price,
        events._ingested_at
    from items
    inner join events on events.event_id = items.event_id
    where items.product_id is not null

)

select * from final
