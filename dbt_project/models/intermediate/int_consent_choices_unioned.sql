-- Every explicit marketing-consent choice, one row per customer, topic and choice, from each
-- place that records one: the ESP's feedback (unsubscribe, group unsubscribe and resubscribe;
-- the collector's unsubscribe links and preference centre journal theirs as ESP events) and
-- the CRM's opt-in field (yes or no for every marketing topic, at its opt-in time). A global
-- unsubscribe, a spam complaint, or a group no declared topic claims, leaves every topic.
with

esp as (

    select
        customer_id,
        esp_event_id,
        event_type,
        occurred_at,
        cast(asm_group_id as varchar) as group_id
    from {{ ref('int_esp_events_identified') }}
    where event_type in ('unsubscribe', 'group_unsubscribe', 'group_resubscribe', 'spamreport')

),

contacts as (

    select
        identities.customer_id,
        contacts.contact_id,
        contacts.email_opt_in,
        coalesce(contacts.email_opt_in_at, contacts.updated_at, contacts.created_at) as occurred_at
    from {{ ref('stg_crm__contacts') }} as contacts
    inner join {{ ref('int_identities_resolved') }} as identities
        on identities.source = 'crm' and identities.source_record_id = contacts.contact_id
    where contacts.email_opt_in is not null

),

topics as (

    {{ consent_topics_relation() }}

),

esp_everywhere as (

    select
        esp.customer_id,
        topics.topic,
        'unsubscribed' as status,
        esp.occurred_at,
        esp.event_type as changed_by,
        'esp' as source,
        esp.esp_event_id as evidence_id
    from esp
    cross join topics
    where
        esp.event_type in ('unsubscribe', 'spamreport')
        or (
            esp.event_type = 'group_unsubscribe'
            and not exists (
                select 1 from topics as claimed where claimed.group_id = esp.group_id
            )
        )

),

esp_per_topic as (

    select
        esp.customer_id,
        topics.topic,
        case when esp.event_type = 'group_resubscribe' then 'subscribed' else 'unsubscribed' end as status,
        esp.occurred_at,
        esp.event_type as changed_by,
        'esp' as source,
        esp.esp_event_id as evidence_id
    from esp
    inner join topics on esp.group_id = topics.group_id
    where esp.event_type in ('group_unsubscribe', 'group_resubscribe')

),

crm as (

    select
        contacts.customer_id,
        topics.topic,
        case when contacts.email_opt_in then 'subscribed' else 'unsubscribed' end as status,
        contacts.occurred_at,
        case when contacts.email_opt_in then 'crm_opt_in' else 'crm_opt_out' end as changed_by,
        'crm' as source,
        'crm:' || contacts.contact_id as evidence_id
    from contacts
    cross join topics
    where contacts.occurred_at is not null

),

final as (

    select * from esp_everywhere
    union all
    select * from esp_per_topic
    union all
    select * from crm

)

select * from final
