-- One row per person-bearing source record: the keys the deterministic tier links on and
-- the attributes the fuzzy tier compares.
with

contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

company_domains as (

    select company_name, min(domain) as domain
    from {{ ref('stg_crm__companies') }}
    group by company_name

),

billing_customers as (

    select * from {{ ref('stg_billing__customers') }}

),

event_identities as (

    select * from {{ ref('int_event_identities_aggregated') }}

),

crm_records as (

    select
        'crm' as source,
        contacts.contact_id as source_record_id,
        {{ email_cleaned('contacts.email') }} as email_cleaned,
        contacts.contact_id as crm_contact_id,
        cast(null as varchar) as linked_user_id,
        contacts.first_name,
        contacts.last_name,
        contacts.phone,
        contacts.birth_date,
        contacts.postcode,
        contacts.city,
        company_domains.domain as employer_domain,
        contacts.updated_at as observed_at
    from contacts
    left join company_domains on company_domains.company_name = contacts.company

),

billing_records as (

    select
        'billing' as source,
        billing_customer_id as source_record_id,
        {{ email_cleaned('email') }} as email_cleaned,
        crm_contact_id,
        cast(null as varchar) as linked_user_id,
        split_part(full_name, ' ', 1) as first_name,
        nullif(trim(substr(full_name, length(split_part(full_name, ' ', 1)) + 2)), '') as last_name,
        phone,
        cast(null as date) as birth_date,
        cast(null as varchar) as postcode,
        city,
        case
            when lower(split_part(email, '@', 2)) in ({% for d in var('identity_free_mail_domains') %}'{{ d }}'{% if not loop.last %}, {% endif %}{% endfor %}) then null
            else nullif(lower(split_part(trim(email), '@', 2)), '')
        end as employer_domain,
        created_at as observed_at
    from billing_customers

),

web_user_records as (

    select
        'web_user' as source,
        source_record_id,
        {{ email_cleaned('email') }} as email_cleaned,
        source_record_id as crm_contact_id,
        cast(null as varchar) as linked_user_id,
        first_name,
        last_name,
        cast(null as varchar) as phone,
        cast(null as date) as birth_date,
        cast(null as varchar) as postcode,
        cast(null as varchar) as city,
        cast(null as varchar) as employer_domain,
        observed_at
    from event_identities
    where source = 'web_user'

),

-- anonymousId -> userId, from the events that carry both (identify and later events).
web_anonymous_records as (

    select
        'web_anonymous' as source,
        source_record_id,
        cast('' as varchar) as email_cleaned,
        cast(null as varchar) as crm_contact_id,
        linked_user_id,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        cast(null as varchar) as phone,
        cast(null as date) as birth_date,
        cast(null as varchar) as postcode,
        cast(null as varchar) as city,
        cast(null as varchar) as employer_domain,
        observed_at
    from event_identities
    where source = 'web_anonymous'

),

esp_records as (

    select
        'esp' as source,
        source_record_id,
        {{ email_cleaned('email') }} as email_cleaned,
        cast(null as varchar) as crm_contact_id,
        cast(null as varchar) as linked_user_id,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        cast(null as varchar) as phone,
        cast(null as date) as birth_date,
        cast(null as varchar) as postcode,
        cast(null as varchar) as city,
        cast(null as varchar) as employer_domain,
        observed_at
    from event_identities
    where source = 'esp'

),

unioned as (

    select * from crm_records
    union all
    select * from billing_records
    union all
    select * from web_user_records
    union all
    select * from web_anonymous_records
    union all
    select * from esp_records

),

nicknames as (

    select * from {{ ref('name_nicknames') }}

),

keyed as (

    select
        unioned.source || ':' || unioned.source_record_id as record_key,
        unioned.source,
        unioned.source_record_id,
        {{ normalize_cleaned_email('unioned.email_cleaned') }} as email_normalized,
        unioned.crm_contact_id,
        unioned.linked_user_id,
        coalesce(nicknames.canonical_name, {{ clean_name('unioned.first_name') }}) as first_name_key,
        {{ clean_name('unioned.last_name') }} as last_name_key,
        case
            when length(regexp_replace(coalesce(unioned.phone, ''), '[^0-9]', '', 'g')) < 9 then null
            when right(regexp_replace(unioned.phone, '[^0-9]', '', 'g'), 9) in (
                    {% for p in var('identity_placeholder_phones') %}'{{ p[-9:] }}'{% if not loop.last %}, {% endif %}{% endfor %}
                ) then null
            else right(regexp_replace(unioned.phone, '[^0-9]', '', 'g'), 9)
        end as phone_key,
        unioned.birth_date,
        upper(replace(unioned.postcode, ' ', '')) as postcode_key,
        lower(trim(unioned.city)) as city_key,
        unioned.employer_domain as employer_domain_key,
        unioned.observed_at
    from unioned
    left join nicknames
        on nicknames.nickname = {{ clean_name('unioned.first_name') }}

),

-- The fuzzy tier's population: CRM contacts and billing customers with a name. Blocking,
-- u sampling, term frequencies and the prior all count the same records.
final as (

    select
        *,
        source in ('crm', 'billing')
        and (first_name_key is not null or last_name_key is not null) as is_fuzzy_candidate
    from keyed

)

select * from final
