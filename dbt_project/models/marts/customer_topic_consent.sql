-- Consent per customer and marketing topic, from the ESP's feedback: the latest explicit
-- choice wins. A global unsubscribe leaves every topic; a group unsubscribe or resubscribe
-- moves the topic its group stands for (var consent_topics, which the pipeline fills from
-- consent/topics.yml). A group that no topic claims counts as a global unsubscribe, the
-- safe reading. Customers without a row have made no choice (subscribed by default).
with

events as (

    select
        customer_id,
        esp_event_id,
        event_type,
        occurred_at,
        cast(asm_group_id as varchar) as group_id
    from {{ ref('int_esp_events_identified') }}
    where event_type in ('unsubscribe', 'group_unsubscribe', 'group_resubscribe')

),

topics as (

    {{ consent_topics_relation() }}

),

everywhere as (

    select
        events.customer_id,
        topics.topic,
        'unsubscribed' as status,
        events.occurred_at,
        events.esp_event_id,
        events.event_type
    from events
    cross join topics
    where
        events.event_type = 'unsubscribe'
        or (
            events.event_type = 'group_unsubscribe'
            and not exists (
                select 1 from topics as claimed where claimed.group_id = events.group_id
            )
        )

),

per_topic as (

    select
        events.customer_id,
        topics.topic,
        case when events.event_type = 'group_resubscribe' then 'subscribed' else 'unsubscribed' end as status,
        events.occurred_at,
        events.esp_event_id,
        events.event_type
    from events
    inner join topics on events.group_id = topics.group_id
    where events.event_type in ('group_unsubscribe', 'group_resubscribe')

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_id, topic order by occurred_at desc, esp_event_id desc
        ) as recency
    from (
        select * from everywhere
        union all
        select * from per_topic
    ) as choices

),

final as (

    select
        customer_id,
        topic,
        status,
        occurred_at as changed_at,
        event_type as changed_by,
        esp_event_id as evidence_event_id
    from ranked
    where recency = 1

)

select * from final
