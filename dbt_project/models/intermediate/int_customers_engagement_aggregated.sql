{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="{{ drop_retired_customers() }}",
) }}

-- Engagement layer: sends, opens, clicks and replies over 7/30/90 days, a 0-10 score and a trend.
--
-- engagement_score = 10 * (0.5 * min(opens_30d / 4, 1)
--                        + 0.3 * min(clicks_30d / 2, 1)
--                        + 0.2 * recency)
--   recency = 1 if the last open is within 7 days, 0.5 within 30 days, else 0.
-- Opens and clicks count distinct messages, so a re-opened email counts once.
-- engagement_trend compares opens in the last 30 days with the 30 days before:
--   rising (>= 25% more and at least 2), declining (>= 25% fewer), else stable.
-- One row per customer (null figures: no ESP events).
--
-- Kept incrementally (bookkeeping columns: macros/incremental.sql). A message counts in a
-- window when one of its events falls in it, so a count changes only through the messages
-- with an event that arrived, became visible or crossed the start of a window (7, 30, 60 or
-- 90 days before as_of) since the table's as_of. An incremental run adds, to each stored
-- count, what those messages count now minus what they counted then (their events then:
-- visible at the table's as_of and ingested by its newest input), and takes the newest
-- event times as the greater of the stored ones and those events'. A day's sends reach
-- most customers with a window's edge, and this reads the messages at the edges, not the
-- customers' 90 days. Customers are computed again over their whole history when their
-- source records changed (or they are new), when one of their events was re-delivered
-- (first ingested before: it may have moved in time), and everyone on a backfill.
{%- set figures = [('delivered', 'sends'), ('open', 'opens'), ('click', 'clicks'), ('reply', 'replies')] %}
{%- set windows = [7, 30, 90] %}
with

customers as (

    select * from {{ ref('int_customers_fingerprinted') }}

),

{% if is_incremental() -%}
watermark as (

    select
        max(_as_of) as as_of,
        coalesce(max(_ingested_at), cast('1900-01-01' as timestamp)) as ingested_at
    from {{ this }}

),

-- Customers computed again over every event.
scope as (

    select customer_id from customers
    where {{ as_of() }} < (select as_of from watermark)
    union
    select customers.customer_id
    from customers
    left join {{ this }} as kept on kept.customer_id = customers.customer_id
    where kept.customer_id is null
        or kept._identity_fingerprint <> customers.identity_fingerprint
    union
    select customer_id
    from {{ ref('int_esp_events_identified') }}
    where customer_id is not null
        and _ingested_at > (select ingested_at from watermark)
        and coalesce(_first_ingested_at <= (select ingested_at from watermark), true)

),

-- The other customers' events that can change a figure since the table's as_of.
moved as (

    select
        events.customer_id,
        events.event_type,
        events.esp_message_id,
        events.occurred_at,
        events._ingested_at,
        events.event_type = 'open' and coalesce(events.is_machine_open, false) as is_machine
    from {{ ref('int_esp_events_identified') }} as events
    where events.customer_id is not null
        and (
            events._ingested_at > (select ingested_at from watermark)
            {%- for days in [0, 7, 30, 60, 90] %}
            or (
                events.occurred_at >= (select {{ days_before('as_of', days) }} from watermark)
                and events.occurred_at < {{ days_before(as_of(), days) }}
            )
            {%- endfor %}
        )
        and not exists (select 1 from scope where scope.customer_id = events.customer_id)

),

moved_messages as (

    select distinct customer_id, event_type, esp_message_id
    from moved
    where esp_message_id is not null and not is_machine

),

-- Each of those messages' events, and whether the stored figures counted it.
message_events as (

    select
        events.customer_id,
        events.event_type,
        events.esp_message_id,
        events.occurred_at,
        watermark.as_of as kept_as_of,
        events.occurred_at < watermark.as_of
        and events._ingested_at <= watermark.ingested_at as was_counted
    from {{ ref('int_esp_events_identified') }} as events
    inner join moved_messages
        on moved_messages.customer_id = events.customer_id
        and moved_messages.event_type = events.event_type
        and moved_messages.esp_message_id = events.esp_message_id
    cross join watermark
    where not (events.event_type = 'open' and coalesce(events.is_machine_open, false))

),

-- Per message, whether it counts in each window now, minus whether it counted then.
message_changes as (

    select
        customer_id,
        event_type,
        {%- for days in windows %}
        max(case when occurred_at >= {{ days_before(as_of(), days) }} then 1 else 0 end)
        - max(case when was_counted and occurred_at >= {{ days_before('kept_as_of', days) }} then 1 else 0 end) as change_{{ days }}d,
        {%- endfor %}
        max(case
            when occurred_at >= {{ days_before(as_of(), 60) }} and occurred_at < {{ days_before(as_of(), 30) }} then 1
            else 0
        end)
        - max(case
            when was_counted and occurred_at >= {{ days_before('kept_as_of', 60) }}
                and occurred_at < {{ days_before('kept_as_of', 30) }} then 1
            else 0
        end) as change_prev_30d
    from message_events
    group by customer_id, event_type, esp_message_id

),

changes as (

    select
        customer_id,
        {%- for days in windows %}
        {%- for event_type, figure in figures %}
        sum(case when event_type = '{{ event_type }}' then change_{{ days }}d else 0 end) as {{ figure }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        sum(case when event_type = 'open' then change_prev_30d else 0 end) as opens_prev_30d
    from message_changes
    group by customer_id

),

-- The newest event times among the moved events (the older ones are in the stored row).
moved_newest as (

    select
        customer_id,
        max(case when event_type = 'open' and not is_machine then occurred_at end) as last_open_at,
        max(case when event_type = 'click' then occurred_at end) as last_click_at,
        max(case when event_type = 'delivered' then occurred_at end) as last_send_at,
        max(case when is_machine then 0 else 1 end) as has_counted_event,
        max(_ingested_at) as newest_ingested_at
    from moved
    group by customer_id

),

-- The stored figures moved on; a customer who had no counted event and still has none
-- keeps null figures.
carried as (

    select
        kept.customer_id,
        {%- for days in windows %}
        {%- for event_type, figure in figures %}
        cast(coalesce(kept.{{ figure }}_{{ days }}d, 0) + coalesce(changes.{{ figure }}_{{ days }}d, 0) as bigint) as {{ figure }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        cast(coalesce(kept.opens_prev_30d, 0) + coalesce(changes.opens_prev_30d, 0) as bigint) as opens_prev_30d,
        greatest(kept.last_open_at, moved_newest.last_open_at) as last_open_at,
        greatest(kept.last_click_at, moved_newest.last_click_at) as last_click_at,
        greatest(kept.last_send_at, moved_newest.last_send_at) as last_send_at
    from moved_newest
    inner join {{ this }} as kept on kept.customer_id = moved_newest.customer_id
    left join changes on changes.customer_id = moved_newest.customer_id
    where kept.sends_90d is not null or moved_newest.has_counted_event = 1

),

carried_ingested as (

    select
        kept.customer_id,
        greatest(kept._ingested_at, moved_newest.newest_ingested_at) as newest_ingested_at
    from moved_newest
    inner join {{ this }} as kept on kept.customer_id = moved_newest.customer_id

),

-- Every customer whose row this run writes.
recomputed as (

    select customer_id from scope
    union
    select customer_id from moved_newest

),

{% endif -%}
identified as (

    select identified.*
    from {{ ref('int_esp_events_identified') }} as identified
    {% if is_incremental() -%}
    inner join scope on scope.customer_id = identified.customer_id
    {%- endif %}

),

events as (

    -- Apple Mail Privacy Protection opens are the machine's, not the reader's: left out.
    select * from identified
    where not (event_type = 'open' and coalesce(is_machine_open, false))

),

ingested as (

    select customer_id, max(_ingested_at) as newest_ingested_at
    from identified
    group by customer_id
    {%- if is_incremental() %}
    union all
    select customer_id, newest_ingested_at from carried_ingested
    {%- endif %}

),

messages as (

    -- One row per customer, event type and message: whether the message had that event in
    -- each window. Counting these rows gives the distinct messages of a window without a
    -- count(distinct) per figure (sixteen of them rescanned the events).
    select
        customer_id,
        event_type,
        esp_message_id,
        {% for days in windows %}
        max(case when occurred_at >= {{ days_before(as_of(), days) }} then 1 else 0 end) as in_{{ days }}d,
        {% endfor %}
        max(case
            when occurred_at >= {{ days_before(as_of(), 60) }}
                and occurred_at < {{ days_before(as_of(), 30) }}
                then 1
            else 0
        end) as in_prev_30d,
        max(occurred_at) as last_at
    from events
    group by customer_id, event_type, esp_message_id

),

counted as (

    select
        customer_id,
        {% for days in windows %}
        {%- for event_type, figure in figures %}
        cast(sum(case when event_type = '{{ event_type }}' and esp_message_id is not null then in_{{ days }}d else 0 end) as bigint) as {{ figure }}_{{ days }}d,
        {%- endfor %}
        {% endfor %}
        cast(sum(case when event_type = 'open' and esp_message_id is not null then in_prev_30d else 0 end) as bigint) as opens_prev_30d,
        max(case when event_type = 'open' then last_at end) as last_open_at,
        max(case when event_type = 'click' then last_at end) as last_click_at,
        max(case when event_type = 'delivered' then last_at end) as last_send_at
    from messages
    group by customer_id
    {%- if is_incremental() %}
    union all
    select * from carried
    {%- endif %}

),

scored as (

    select
        *,
        case
            when last_open_at >= {{ days_before(as_of(), 7) }} then 1.0
            when last_open_at >= {{ days_before(as_of(), 30) }} then 0.5
            else 0.0
        end as recency_factor
    from counted

),

aggregated as (

    select
        customer_id,
        sends_7d, sends_30d, sends_90d,
        opens_7d, opens_30d, opens_90d,
        clicks_7d, clicks_30d, clicks_90d,
        replies_7d, replies_30d, replies_90d,
        opens_prev_30d,
        last_open_at,
        last_click_at,
        last_send_at,
        cast(round(10 * (
            0.5 * least(opens_30d / 4.0, 1.0)
            + 0.3 * least(clicks_30d / 2.0, 1.0)
            + 0.2 * recency_factor
        ), 1) as numeric(4, 1)) as engagement_score,
        case
            when opens_30d >= 2 and opens_30d >= 1.25 * opens_prev_30d and opens_30d > opens_prev_30d then 'rising'
            when opens_prev_30d > 0 and opens_30d <= 0.75 * opens_prev_30d then 'declining'
            else 'stable'
        end as engagement_trend
    from scored

),

final as (

    select
        customers.customer_id,
        aggregated.sends_7d, aggregated.sends_30d, aggregated.sends_90d,
        aggregated.opens_7d, aggregated.opens_30d, aggregated.opens_90d,
        aggregated.clicks_7d, aggregated.clicks_30d, aggregated.clicks_90d,
        aggregated.replies_7d, aggregated.replies_30d, aggregated.replies_90d,
        aggregated.opens_prev_30d,
        aggregated.last_open_at,
        aggregated.last_click_at,
        aggregated.last_send_at,
        aggregated.engagement_score,
        aggregated.engagement_trend,
        {{ rebuild_bookkeeping('customers', 'ingested.newest_ingested_at') }}
    from customers
    {% if is_incremental() -%}
    inner join recomputed on recomputed.customer_id = customers.customer_id
    {%- endif %}
    left join aggregated on aggregated.customer_id = customers.customer_id
    left join ingested on ingested.customer_id = customers.customer_id

)

select * from final
