-- Results per campaign (or flow), experiment, variant and send day: what happened to the
-- messages profilecast sent, and to the holdout it kept back. ESP events join the message
-- log by message_key; an order by the same customer within the message's attribution
-- window (from when it went out) is a conversion. Opens Apple Mail Privacy Protection
-- fetched for the reader (SendGrid's sg_machine_open) are counted apart and left out of
-- `opened`. Messages whose window is still open are counted as far as they go, and
-- `attribution_complete` says so.
with

messages as (

    select * from {{ ref('stg_sends__messages') }}
    where sent_at < {{ as_of() }}

),

esp_events as (

    select * from {{ ref('stg_esp__events') }}
    where message_key is not null and occurred_at < {{ as_of() }}

),

orders as (

    select * from {{ ref('int_orders_unioned') }}
    where customer_id is not null and ordered_at < {{ as_of() }}

),

message_events as (

    select
        message_key,
        max(case when event_type = 'delivered' then 1 else 0 end) as delivered,
        max(case when event_type = 'open' and not is_machine_open then 1 else 0 end) as opened,
        max(case when event_type = 'open' and is_machine_open then 1 else 0 end) as machine_opened,
        max(case when event_type = 'click' then 1 else 0 end) as clicked,
        max(case when event_type in ('unsubscribe', 'group_unsubscribe') then 1 else 0 end) as unsubscribed,
        max(case when event_type = 'spamreport' then 1 else 0 end) as complained,
        max(case when event_type in ('bounce', 'dropped') then 1 else 0 end) as bounced
    from esp_events
    group by message_key

),

message_orders as (

    select
        messages.message_key,
        count(*) as orders,
        sum(orders.amount) as revenue
    from messages
    inner join orders
        on orders.customer_id = messages.customer_id
        and orders.ordered_at >= messages.sent_at
        and orders.ordered_at < {{ plus_days('messages.sent_at', 'messages.attribution_days') }}
    group by messages.message_key

),

per_message as (

    select
        messages.campaign_id,
        messages.experiment_id,
        messages.variant,
        messages.status,
        messages.run_date as send_date,
        {{ plus_days('messages.sent_at', 'messages.attribution_days') }} as attribution_ends_at,
        coalesce(message_events.delivered, 0) as delivered,
        coalesce(message_events.opened, 0) as opened,
        case
            when message_events.machine_opened = 1 and message_events.opened = 0 then 1 else 0
        end as machine_opened_only,
        coalesce(message_events.clicked, 0) as clicked,
        coalesce(message_events.unsubscribed, 0) as unsubscribed,
        coalesce(message_events.complained, 0) as complained,
        coalesce(message_events.bounced, 0) as bounced,
        case when message_orders.orders > 0 then 1 else 0 end as converted,
        coalesce(message_orders.revenue, 0) as revenue
    from messages
    left join message_events on message_events.message_key = messages.message_key
    left join message_orders on message_orders.message_key = messages.message_key

),

final as (

    select
        campaign_id || '|' || experiment_id || '|' || variant || '|' || cast(send_date as varchar) as result_key,
        campaign_id,
        experiment_id,
        variant,
        variant = 'holdout' as is_holdout,
        send_date,
        cast(count(*) as integer) as recipients,
        cast(sum(case when status = 'sent' then 1 else 0 end) as integer) as sent,
        cast(sum(delivered) as integer) as delivered,
        cast(sum(opened) as integer) as opened,
        cast(sum(machine_opened_only) as integer) as machine_opened_only,
        cast(sum(clicked) as integer) as clicked,
        cast(sum(unsubscribed) as integer) as unsubscribed,
        cast(sum(complained) as integer) as complained,
        cast(sum(bounced) as integer) as bounced,
        cast(sum(converted) as integer) as converted,
        cast(sum(revenue) as numeric(18, 2)) as revenue,
        max(attribution_ends_at) <= {{ as_of() }} as attribution_complete
    from per_message
    group by campaign_id, experiment_id, variant, send_date

)

select * from final
