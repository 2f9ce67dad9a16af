{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="{{ drop_retired_customers() }}",
) }}

-- Identity layer: the best value of each attribute per customer, chosen by the declared
-- survivorship rules in seeds/survivorship_rules.csv (lowest priority number wins; within a
-- source the most recently observed non-empty value wins).
--
-- Kept incrementally: a customer's row depends only on its own source records, so a run
-- recomputes only the customers whose records changed (a merge, a split, a new customer:
-- the identity fingerprint) or one of whose inputs was ingested after the newest this
-- table holds (a CRM contact or billing customer version, a web identify event, or an ESP
-- event of one of its addresses when its email does not come from a source ranked above
-- the ESP). A full refresh computes everyone with the same SQL.
with

customers as (

    select * from {{ ref('int_customers_fingerprinted') }}

),

all_identities as (

    select * from {{ ref('int_identities_resolved') }}

),

crm_contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

billing_customers as (

    select * from {{ ref('stg_billing__customers') }}

),

identify_events as (

    select user_id, email, first_name, last_name, occurred_at, _ingested_at
    from {{ ref('stg_web__events') }}
    where event_type = 'identify'

),

{% if is_incremental() -%}
watermark as (

    select coalesce(max({{ prior_column('_ingested_at', 'cast(null as timestamp)') }}), cast('1900-01-01' as timestamp)) as ingested_at
    from {{ this }}

),

-- Source records with a version ingested since the newest input this table was built from.
fresh_records as (

    select 'crm' as source, contact_id as source_record_id
    from crm_contacts
    where _ingested_at > (select ingested_at from watermark)
    union all
    select 'billing', billing_customer_id
    from billing_customers
    where _ingested_at > (select ingested_at from watermark)
    union all
    select 'web_user', user_id
    from identify_events
    where _ingested_at > (select ingested_at from watermark)

),

-- Addresses with an ESP event ingested since. Such an event changes only the address's
-- recency, which decides the email alone, and only against sources ranked no higher than
-- the ESP: a day's sends reach a third of the addresses, most of whose customers keep a
-- CRM email whatever the ESP says.
fresh_addresses as (

    select distinct email_key as address
    from {{ ref('stg_esp__events') }}
    where _ingested_at > (select ingested_at from watermark) and email is not null

),

email_rules as (

    select source, priority
    from {{ ref('survivorship_rules') }}
    where attribute = 'email'

),

scope as (

    select customers.customer_id
    from customers
    left join (
        select
            customer_id,
            {{ prior_column('_identity_fingerprint', 'cast(null as varchar)') }} as fingerprint
        from {{ this }}
    ) as kept on kept.customer_id = customers.customer_id
    where kept.customer_id is null or kept.fingerprint is distinct from customers.identity_fingerprint
    union
    select all_identities.customer_id
    from all_identities
    inner join fresh_records
        on fresh_records.source = all_identities.source
        and fresh_records.source_record_id = all_identities.source_record_id
    union
    select all_identities.customer_id
    from all_identities
    inner join fresh_addresses on fresh_addresses.address = all_identities.source_record_id
    left join {{ this }} as kept on kept.customer_id = all_identities.customer_id
    left join email_rules as kept_rule on kept_rule.source = kept.email_source
    where all_identities.source = 'esp'
        and (
            kept_rule.priority is null
            or kept_rule.priority >= (select email_rules.priority from email_rules where email_rules.source = 'esp')
        )

),

identities as (

    select all_identities.*
    from all_identities
    inner join scope on scope.customer_id = all_identities.customer_id

),

computed as (

    select customers.*
    from customers
    inner join scope on scope.customer_id = customers.customer_id

),
{%- else %}
identities as (

    select * from all_identities

),

computed as (

    select * from customers

),
{%- endif %}

rules as (

    select * from {{ ref('survivorship_rules') }}

),

contacts as (

    select identities.customer_id, contacts.*
    from crm_contacts as contacts
    inner join identities
        on identities.source = 'crm' and identities.source_record_id = contacts.contact_id

),

billing as (

    select identities.customer_id, customers.*
    from billing_customers as customers
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
        events.occurred_at,
        events._ingested_at
    from identify_events as events
    inner join identities
        on identities.source = 'web_user' and identities.source_record_id = events.user_id

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

survivors as (

    select
        customer_id,
        {% for attribute in ['first_name', 'last_name', 'email', 'phone', 'company', 'job_title', 'industry', 'city', 'country', 'postcode', 'birth_date', 'currency'] %}
        max(case when attribute = '{{ attribute }}' then attribute_value end) as {{ attribute }},
        {% endfor %}
        max(case when attribute = 'email' then source end) as email_source
    from ranked
    where survivor_rank = 1
    group by customer_id

),

-- The newest ingestion among the inputs this build read: the next build's watermark.
newest_input as (

    select max(ingested_at) as ingested_at
    from (
        select max(_ingested_at) as ingested_at from crm_contacts
        union all
        select max(_ingested_at) from billing_customers
        union all
        select max(_ingested_at) from identify_events
        union all
        select max(_ingested_at) from {{ ref('stg_esp__events') }}
    ) as inputs

),

-- One row per customer computed, even one without any surviving value (all nulls), so
-- that a customer who loses every value replaces its earlier row.
final as (

    select
        computed.customer_id,
        {%- for attribute in ['first_name', 'last_name', 'email', 'phone', 'company', 'job_title', 'industry', 'city', 'country', 'postcode', 'birth_date', 'currency', 'email_source'] %}
        survivors.{{ attribute }},
        {%- endfor %}
        computed.identity_fingerprint as _identity_fingerprint,
        (select ingested_at from newest_input) as _ingested_at
    from computed
    left join survivors on survivors.customer_id = computed.customer_id

)

select * from final
