-- Consent layer from ESP feedback: the first unsubscribe, bounce, spam complaint and group
-- (topic) unsubscribe of each customer. A global unsubscribe, a bounce, a complaint or a
-- group unsubscribe that no declared topic claims makes the customer not emailable for
-- marketing (customer_profiles combines this with email validity into is_emailable); a
-- group unsubscribe a topic claims only leaves that topic (customer_topic_consent).
--
-- One row per customer with at least one of those events or a frequency choice: the few
-- events that carry consent are picked before grouping (the rest, sends, opens and clicks,
-- would only add rows of nulls, and customer_profiles left-joins this table).
with

events as (

    select * from {{ ref('int_esp_events_identified') }}
    where event_type in ('unsubscribe', 'bounce', 'spamreport', 'group_unsubscribe', 'dropped', 'preference')

),

topics as (

    {{ consent_topics_relation() }}

),

frequency as (

    -- the latest choice of how often to hear from us (the preference centre's)
    select customer_id, email_frequency
    from (
        select
            customer_id,
            email_frequency,
            row_number() over (
                partition by customer_id order by occurred_at desc, esp_event_id desc
            ) as recency
        from events
        where event_type = 'preference' and email_frequency is not null
    ) as ranked
    where recency = 1

),

aggregated as (

    select
        customer_id,
        min(case when event_type = 'unsubscribe' then occurred_at end) as unsubscribed_at,
        min(case when event_type = 'bounce' and coalesce(bounce_type, 'bounce') = 'bounce' then occurred_at end) as bounced_at,
        min(case when event_type = 'spamreport' then occurred_at end) as complained_at,
        min(case when event_type = 'group_unsubscribe' then occurred_at end) as newsletter_unsubscribed_at,
        min(
            case
                when
                    event_type = 'group_unsubscribe'
                    and (
                        asm_group_id is null
                        or cast(asm_group_id as varchar) not in (
                            select group_id from topics where group_id is not null
                        )
                    )
                    then occurred_at
            end
        ) as unclaimed_group_unsubscribed_at,
        min(case when event_type = 'dropped' then occurred_at end) as dropped_at
    from events
    group by customer_id

),

final as (

    select
        aggregated.*,
        frequency.email_frequency
    from aggregated
    left join frequency on frequency.customer_id = aggregated.customer_id

)

select * from final
