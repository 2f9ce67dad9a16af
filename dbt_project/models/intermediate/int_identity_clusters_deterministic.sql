-- Deterministic tier: records that share a normalised email, that name the same CRM
-- contact (billing metadata, web userId) or that are linked anonymousId -> userId are
-- connected. Edges are stars around each key's smallest record, so the graph stays linear.
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

edges as (

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

    select records.record_key, 'web_user:' || records.linked_user_id, 'anonymous_id_to_user_id'
    from records
    where records.source = 'web_anonymous' and records.linked_user_id is not null

),

nodes as (

    select record_key as node from records

),

{{ connected_components('labels', 'nodes', 'edges', rounds=8) }},

final as (

    select
        records.record_key,
        records.source,
        records.source_record_id,
        labels.label as deterministic_label
    from records
    inner join labels_8 as labels on labels.node = records.record_key

)

select * from final
