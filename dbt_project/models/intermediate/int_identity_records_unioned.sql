-- One row per person-bearing source record, with the keys identity resolution links on.
with

contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

billing_customers as (

    select * from {{ ref('stg_billing__customers') }}

),

web_events as (

    select * from {{ ref('stg_web__events') }}

),

esp_events as (

    select * from {{ ref('stg_esp__events') }}

),

crm_records as (

    select
        'crm' as source,
        contact_id as source_record_id,
        {{ normalize_email('email') }} as email_normalized,
        contact_id as crm_contact_id,
        cast(null as varchar) as linked_user_id,
        updated_at as observed_at
    from contacts

),

billing_records as (

    select
        'billing' as source,
        billing_customer_id as source_record_id,
        {{ normalize_email('email') }} as email_normalized,
        crm_contact_id,
        cast(null as varchar) as linked_user_id,
        created_at as observed_at
    from billing_customers

),

web_users as (

    select
        user_id,
        max(email) as email,
        max(occurred_at) as observed_at
    from web_events
    where user_id is not null
    group by user_id

),

web_user_records as (

    select
        'web_user' as source,
        user_id as source_record_id,
        {{ normalize_email('email') }} as email_normalized,
        user_id as crm_contact_id,
        cast(null as varchar) as linked_user_id,
        observed_at
    from web_users

),

-- anonymousId -> userId, taken from the events that carry both (identify and later events).
anonymous_links as (

    select
        anonymous_id,
        min(user_id) as user_id,
        max(occurred_at) as observed_at
    from web_events
    where anonymous_id is not null
    group by anonymous_id

),

web_anonymous_records as (

    select
        'web_anonymous' as source,
        anonymous_id as source_record_id,
        cast(null as varchar) as email_normalized,
        cast(null as varchar) as crm_contact_id,
        user_id as linked_user_id,
        observed_at
    from anonymous_links

),

esp_records as (

    select
        'esp' as source,
        lower(trim(email)) as source_record_id,
        {{ normalize_email('min(email)') }} as email_normalized,
        cast(null as varchar) as crm_contact_id,
        cast(null as varchar) as linked_user_id,
        max(occurred_at) as observed_at
    from esp_events
    where email is not null
    group by lower(trim(email))

),

final as (

    select * from crm_records
    union all
    select * from billing_records
    union all
    select * from web_user_records
    union all
    select * from web_anonymous_records
    union all
    select * from esp_records

)

select * from final
