-- Consent per customer and marketing topic: one row for every customer and topic, with the
-- latest explicit choice (ties go to the objection), where it came from, the customer's
-- country and its regime (var consent_regimes, from consent/topics.yml), and the verdict:
-- may_email, or blocked_reason in words. Without a choice, the regime decides: opt_out
-- mails, soft_opt_in mails existing customers (an order), opt_in does not mail.
with

choices as (

    select * from {{ ref('int_consent_choices_unioned') }}

),

customers as (

    -- one row per customer of the identity map
    select
        fingerprinted.customer_id,
        survived.country
    from {{ ref('int_customers_fingerprinted') }} as fingerprinted
    left join {{ ref('int_customers_identity_survived') }} as survived
        on survived.customer_id = fingerprinted.customer_id

),

transactions as (

    select customer_id, orders_count from {{ ref('int_customers_transactions_aggregated') }}

),

topics as (

    {{ consent_topics_relation() }}

),

regimes as (

    {{ consent_regimes_relation() }}

),

latest as (

    select *
    from (
        select
            *,
            row_number() over (
                partition by customer_id, topic
                order by
                    occurred_at desc,
                    case when status = 'unsubscribed' then 0 else 1 end,
                    evidence_id desc
            ) as recency
        from choices
    ) as ranked
    where recency = 1

),

decided as (

    select
        customers.customer_id,
        topics.topic,
        coalesce(latest.status, 'no_choice') as status,
        latest.occurred_at as changed_at,
        latest.changed_by,
        latest.source,
        latest.evidence_id,
        upper(customers.country) as country,
        coalesce(
            regimes.regime,
            case
                when customers.country is null then {{ consent_regime_fallback('unknown') }}
                else {{ consent_regime_fallback('default') }}
            end
        ) as regime,
        coalesce(transactions.orders_count, 0) > 0 as is_existing_customer
    from customers
    cross join topics
    left join latest
        on latest.customer_id = customers.customer_id and latest.topic = topics.topic
    left join regimes on regimes.country = upper(customers.country)
    left join transactions on transactions.customer_id = customers.customer_id

),

final as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(topic as varchar) as topic,
        cast(status as varchar) as status,
        cast(changed_at as timestamp) as changed_at,
        cast(changed_by as varchar) as changed_by,
        cast(source as varchar) as source,
        cast(evidence_id as varchar) as evidence_id,
        cast(country as varchar) as country,
        cast(regime as varchar) as regime,
        cast(
            case
                when status = 'subscribed' then true
                when status = 'unsubscribed' then false
                when regime = 'opt_out' then true
                when regime = 'soft_opt_in' then is_existing_customer
                else false
            end
            as boolean
        ) as may_email,
        cast(
            case
                when status = 'unsubscribed' and changed_by = 'spamreport' then 'complained'
                when status = 'unsubscribed' and changed_by in ('unsubscribe', 'crm_opt_out')
                    then 'unsubscribed from all marketing (' || changed_by || ')'
                when status = 'unsubscribed' then 'opted out of ' || topic
                when status = 'subscribed' or regime = 'opt_out' then null
                when regime = 'soft_opt_in' and is_existing_customer then null
                else 'has no opt-in for ' || topic || ' (' || coalesce(country, 'unknown country')
                    || ' is ' || regime || ')'
            end
            as varchar
        ) as blocked_reason
    from decided

)

select * from final
