-- Deterministic-tier edges: records that share a normalised email, that name a CRM
-- contact (billing metadata, web userId), or anonymousId -> userId. Stars around each
-- key's smallest record keep the edge list linear in the number of records.
--
-- Over-merge guard: a billing customer whose metadata names one CRM contact while its email
-- is another contact's, the two contacts named differently, would join two people. It
-- keeps one of its two links (the email when its own name is the email owner's and not the
-- named contact's, else the metadata) and the other edge is rejected as 'names_conflict'.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

metadata_conflicts as (

    select distinct
        billing.record_key,
        billing.email_normalized,
        named.record_key as named_contact,
        email_owner.record_key as email_owner,
        coalesce(billing.first_name_key, '') = coalesce(email_owner.first_name_key, '')
        and coalesce(billing.last_name_key, '') = coalesce(email_owner.last_name_key, '')
        and not (
            coalesce(billing.first_name_key, '') = coalesce(named.first_name_key, '')
            and coalesce(billing.last_name_key, '') = coalesce(named.last_name_key, '')
        ) as keeps_email
    from records as billing
    inner join records as named
        on named.source = 'crm' and named.source_record_id = billing.crm_contact_id
    inner join records as email_owner
        on email_owner.source = 'crm'
        and email_owner.email_normalized = billing.email_normalized
        and email_owner.record_key <> named.record_key
    where billing.source = 'billing'
        and (
            named.first_name_key <> email_owner.first_name_key
            or named.last_name_key <> email_owner.last_name_key
        )

),

conflicted as (

    -- A billing record with several conflicting owners keeps its metadata link only.
    select record_key, bool_and(keeps_email) and count(*) = 1 as keeps_email
    from metadata_conflicts
    group by record_key

),

dropped_addresses as (

    -- The addresses conflicted billing records do not link by (now or in their history).
    select metadata_conflicts.record_key, metadata_conflicts.email_normalized
    from metadata_conflicts
    inner join conflicted on conflicted.record_key = metadata_conflicts.record_key
    where not conflicted.keeps_email

),

linkable as (

    -- The records that take part in email stars: all but the conflicted billing records
    -- that keep their metadata link.
    select records.*
    from records
    left join conflicted on conflicted.record_key = records.record_key
    where conflicted.record_key is null or conflicted.keeps_email

),

email_centres as (

    select email_normalized, min(record_key) as centre
    from linkable
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

rejected as (

    select distinct
        metadata_conflicts.record_key as node_a,
        case
            when conflicted.keeps_email then metadata_conflicts.named_contact
            else metadata_conflicts.email_owner
        end as node_b,
        case
            when conflicted.keeps_email then 'billing_metadata_crm_contact_id' else 'email'
        end as rule
    from metadata_conflicts
    inner join conflicted on conflicted.record_key = metadata_conflicts.record_key

),

accepted as (

    select linkable.record_key as node_a, email_centres.centre as node_b, 'email' as rule
    from linkable
    inner join email_centres on email_centres.email_normalized = linkable.email_normalized
    where linkable.record_key <> email_centres.centre

    union all

    select
        records.record_key,
        crm_keys.record_key,
        case when records.source = 'billing' then 'billing_metadata_crm_contact_id' else 'web_user_id' end
    from records
    inner join crm_keys on crm_keys.contact_id = records.crm_contact_id
    left join conflicted on conflicted.record_key = records.record_key
    where records.source in ('billing', 'web_user')
        and not coalesce(conflicted.keeps_email, false)

    union all

    select linkable.record_key, previous_emails.record_key, previous_emails.rule
    from linkable
    inner join previous_emails on previous_emails.email_normalized = linkable.email_normalized
    left join dropped_addresses
        on dropped_addresses.record_key = previous_emails.record_key
        and dropped_addresses.email_normalized = previous_emails.email_normalized
    where linkable.record_key <> previous_emails.record_key
        and dropped_addresses.record_key is null

    union all

    select records.record_key, 'web_user:' || records.linked_user_id, 'anonymous_id_to_user_id'
    from records
    where records.source = 'web_anonymous' and records.linked_user_id is not null

),

final as (

    select node_a, node_b, rule, true as is_accepted, cast(null as varchar) as rejection_reason
    from accepted

    union all

    select node_a, node_b, rule, false, 'names_conflict'
    from rejected

)

select * from final
