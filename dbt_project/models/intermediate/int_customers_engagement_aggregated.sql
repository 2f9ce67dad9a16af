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
-- One row per customer (null figures: no ESP events), kept incrementally: see
-- macros/incremental.sql for which customers a run recomputes.
-- engagement_trend compares opens in the last 30 days with the 30 days before:
--   rising (>= 25% more and at least 2), declining (>= 25% fewer), else stable.
with

customers as (

    select * from {{ ref('int_customers_fingerprinted') }}

),

scope as (

    {{ customers_to_rebuild(ref('int_esp_events_identified'), [7, 30, 60, 90]) }}

),

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

),

messages as (

    -- One row per customer, event type and message: whether the message had that event in
    -- each window. Counting these rows gives the distinct messages of a window without a
    -- count(distinct) per figure (sixteen of them rescanned the events).
    select
        customer_id,
        event_type,
        esp_message_id,
        {% for days in [7, 30, 90] %}
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
        {% for days in [7, 30, 90] %}
        {%- for event_type, figure in [('delivered', 'sends'), ('open', 'opens'), ('click', 'clicks'), ('reply', 'replies')] %}
        cast(sum(case when event_type = '{{ event_type }}' and esp_message_id is not null then in_{{ days }}d else 0 end) as bigint) as {{ figure }}_{{ days }}d,
        {%- endfor %}
        {% endfor %}
        cast(sum(case when event_type = 'open' and esp_message_id is not null then in_prev_30d else 0 end) as bigint) as opens_prev_30d,
        max(case when event_type = 'open' then last_at end) as last_open_at,
        max(case when event_type = 'click' then last_at end) as last_click_at,
        max(case when event_type = 'delivered' then last_at end) as last_send_at
    from messages
    group by customer_id

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
    inner join scope on scope.customer_id = customers.customer_id
    left join aggregated on aggregated.customer_id = customers.customer_id
    left join ingested on ingested.customer_id = customers.customer_id

)

select * from final
