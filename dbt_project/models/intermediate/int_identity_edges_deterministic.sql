-- Deterministic-tier edges: records that share a normalised email, that name a CRM
-- contact (billing metadata, web userId), or anonymousId -> userId. Stars around each
-- key's smallest record keep the edge list linear in the number of records.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

email_centres as (

    select email_normalized, min(record_key) as centre
    from records
    where email_normalized is not null
    group by email_normalized

),

crm_keys as (

    select source_record_id as contact_id, record_key
    from records
    where source = 'crm'

),

billing_keys as (

    select source_record_id as billing_customer_id, record_key
    from records
    where source = 'billing'

),

previous_emails as (

    -- Addresses a CRM contact or a billing customer had before its current one (after an
    -- email change in that system).
    select distinct
        crm_keys.record_key,
        {{ normalize_email('history.email') }} as email_normalized,
        'crm_previous_email' as rule
    from {{ ref('stg_crm__contact_emails') }} as history
    inner join crm_keys on crm_keys.contact_id = history.contact_id

    union

    select distinct
        billing_keys.record_key,
        {{ normalize_email('history.email') }} as email_normalized,
        'billing_previous_email' as rule
    from {{ ref('stg_billing__customer_emails') }} as history
    inner join billing_keys on billing_keys.billing_customer_id = history.billing_customer_id

),

final as (

    select records.record_key as node_a, email_centres.centre as node_b, 'email' as rule
    from records
    inner join email_centres on email_centres.email_normalized = records.email_normalized
    where records.record_key <> email_centres.centre

    union all

    select
        records.record_key,
        crm_keys.record_key,
        case when records.source = 'billing' then 'billing_metadata_crm_contact_id' else 'web_user_id' end
    from records
    inner join crm_keys on crm_keys.contact_id = records.crm_contact_id
    where records.source in ('billing', 'web_user')

    union all

    select records.record_key, previous_emails.record_key, previous_emails.rule
    from records
    inner join previous_emails on previous_emails.email_normalized = records.email_normalized
    where records.record_key <> previous_emails.record_key

    union all

    select records.record_key, 'web_user:' || records.linked_user_id, 'anonymous_id_to_user_id'
    from records
    where records.source = 'web_anonymous' and records.linked_user_id is not null

)

select * from final
