-- Identity layer: the best value of each attribute per customer, chosen by the declared
-- survivorship rules in seeds/survivorship_rules.csv (lowest priority number wins; within a
-- source the most recently observed non-empty value wins).
with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

rules as (

    select * from {{ ref('survivorship_rules') }}

),

contacts as (

    select identities.customer_id, contacts.*
    from {{ ref('stg_crm__contacts') }} as contacts
    inner join identities
        on identities.source = 'crm' and identities.source_record_id = contacts.contact_id

),

billing as (

    select identities.customer_id, customers.*
    from {{ ref('stg_billing__customers') }} as customers
    inner join identities
        on identities.source = 'billing'
        and identities.source_record_id = customers.billing_customer_id

),

web as (

    select
        identities.customer_id,
        events.email,
        events.first_name,
        events.last_name,
        events.occurred_at
    from {{ ref('stg_web__events') }} as events
    inner join identities
        on identities.source = 'web_user' and identities.source_record_id = events.user_id
    where events.event_type = 'identify'

),

-- An ESP address is a record of its own (source 'esp'), observed when its newest event
-- happened: int_identity_records_unioned has aggregated the events already.
esp as (

    select identities.customer_id, identities.source_record_id as email, records.observed_at as last_at
    from identities
    inner join {{ ref('int_identity_records_unioned') }} as records
        on records.source = 'esp' and records.source_record_id = identities.source_record_id
    where identities.source = 'esp'

),

candidates as (

    {% set crm_attributes = ['first_name', 'last_name', 'email', 'phone', 'company', 'job_title', 'industry', 'city', 'country', 'postcode'] %}
    {% for attribute in crm_attributes %}
    select
        customer_id, 'crm' as source, '{{ attribute }}' as attribute,
        cast({{ 'lower(' ~ attribute ~ ')' if attribute == 'email' else attribute }} as varchar) as attribute_value,
        coalesce(updated_at, created_at) as observed_at
    from contacts
    union all
    {% endfor %}
    select customer_id, 'crm', 'birth_date', cast(birth_date as varchar), coalesce(updated_at, created_at) from contacts
    union all
    select customer_id, 'billing', 'first_name', split_part(full_name, ' ', 1), created_at from billing
    union all
    select customer_id, 'billing', 'last_name', nullif(trim(substr(full_name, length(split_part(full_name, ' ', 1)) + 2)), ''), created_at from billing
    union all
    select customer_id, 'billing', 'email', lower(email), created_at from billing
    union all
    select customer_id, 'billing', 'phone', phone, created_at from billing
    union all
    select customer_id, 'billing', 'city', city, created_at from billing
    union all
    select customer_id, 'billing', 'country', country, created_at from billing
    union all
    select customer_id, 'billing', 'currency', currency, created_at from billing
    union all
    select customer_id, 'web', 'first_name', first_name, occurred_at from web
    union all
    select customer_id, 'web', 'last_name', last_name, occurred_at from web
    union all
    select customer_id, 'web', 'email', lower(email), occurred_at from web
    union all
    select customer_id, 'esp', 'email', email, last_at from esp

),

ranked as (

    select
        candidates.customer_id,
        candidates.attribute,
        candidates.attribute_value,
        candidates.source,
        row_number() over (
            partition by candidates.customer_id, candidates.attribute
            order by rules.priority asc, candidates.observed_at desc nulls last, candidates.attribute_value asc
        ) as survivor_rank
    from candidates
    inner join rules
        on rules.attribute = candidates.attribute and rules.source = candidates.source
    where candidates.attribute_value is not null and trim(candidates.attribute_value) <> ''

),

final as (

    select
        customer_id,
        {% for attribute in ['first_name', 'last_name', 'email', 'phone', 'company', 'job_title', 'industry', 'city', 'country', 'postcode', 'birth_date', 'currency'] %}
        max(case when attribute = '{{ attribute }}' then attribute_value end) as {{ attribute }},
        {% endfor %}
        max(case when attribute = 'email' then source end) as email_source
    from ranked
    where survivor_rank = 1
    group by customer_id

)

select * from final
