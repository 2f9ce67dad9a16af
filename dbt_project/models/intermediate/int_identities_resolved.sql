-- Deterministic identity resolution. Every record gets an anchor key:
--   CRM contacts anchor on their normalised email (or, without one, on their contact id);
--   billing customers and web users follow the CRM contact they name (metadata / userId),
--   else their own normalised email; anonymous web ids follow the userId they identified as;
--   ESP recipients anchor on their normalised email.
-- customer_id is a hash of the anchor, so unchanged data yields identical ids on every run.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

contact_anchors as (

    select
        source_record_id as contact_id,
        coalesce('email:' || email_normalized, 'crm:' || source_record_id) as anchor
    from records
    where source = 'crm'

),

direct as (

    select
        r.source,
        r.source_record_id,
        r.linked_user_id,
        case
            when r.source = 'crm' then coalesce('email:' || r.email_normalized, 'crm:' || r.source_record_id)
            when ca.anchor is not null then ca.anchor
            when r.email_normalized is not null then 'email:' || r.email_normalized
            else r.source || ':' || r.source_record_id
        end as anchor,
        case
            when r.source = 'crm' and r.email_normalized is not null then 'email'
            when r.source = 'crm' then 'crm_contact_id'
            when ca.anchor is not null and r.source = 'billing' then 'billing_metadata_crm_contact_id'
            when ca.anchor is not null then 'web_user_id'
            when r.email_normalized is not null then 'email'
            else 'singleton'
        end as match_rule
    from records as r
    left join contact_anchors as ca
        on r.source <> 'crm' and r.crm_contact_id = ca.contact_id
    where r.source <> 'web_anonymous'

),

anonymous as (

    select
        r.source,
        r.source_record_id,
        r.linked_user_id,
        coalesce(u.anchor, 'web_anonymous:' || r.source_record_id) as anchor,
        case when u.anchor is not null then 'anonymous_id_to_user_id' else 'singleton' end as match_rule
    from records as r
    left join direct as u
        on u.source = 'web_user' and u.source_record_id = r.linked_user_id
    where r.source = 'web_anonymous'

),

unioned as (

    select source, source_record_id, anchor, match_rule from direct
    union all
    select source, source_record_id, anchor, match_rule from anonymous

),

final as (

    select
        source,
        source_record_id,
        {{ hash_id('pc_', 'anchor') }} as customer_id,
        anchor,
        match_rule,
        cast(1.0 as numeric(5, 4)) as match_score
    from unioned

)

select * from final
