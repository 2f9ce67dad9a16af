-- One row per customer_id with the identity, engagement, transaction, conversation,
-- behavioural and consent layers. is_emailable is the single flag every later stage obeys.
with

customers as (

    -- one row per customer of the identity map
    select customer_id from {{ ref('int_customers_fingerprinted') }}

),

identity as (

    select * from {{ ref('int_customers_identity_survived') }}

),

engagement as (

    select * from {{ ref('int_customers_engagement_aggregated') }}

),

consent as (

    select * from {{ ref('int_customers_consent_derived') }}

),

transactions as (

    select * from {{ ref('int_customers_transactions_aggregated') }}

),

conversations as (

    select * from {{ ref('int_customers_conversations_aggregated') }}

),

behaviour as (

    select * from {{ ref('int_customers_behaviour_aggregated') }}

),

recommendations as (

    select * from {{ ref('int_customers_recommendations_derived') }}

),

timezones as (

    select * from {{ ref('country_timezones') }}

),

first_seen as (

    select
        identities.customer_id,
        min(contacts.created_at) as crm_created_at
    from {{ ref('int_identities_resolved') }} as identities
    inner join {{ ref('stg_crm__contacts') }} as contacts
        on identities.source = 'crm' and identities.source_record_id = contacts.contact_id
    group by identities.customer_id

),

joined as (

    select
        customers.customer_id,
        identity.first_name,
        identity.last_name,
        identity.email,
        identity.phone,
        identity.company,
        identity.job_title,
        identity.industry,
        identity.city,
        identity.country,
        identity.postcode,
        timezones.time_zone,
        first_seen.crm_created_at,
        coalesce(engagement.sends_7d, 0) as sends_7d,
        coalesce(engagement.sends_30d, 0) as sends_30d,
        coalesce(engagement.sends_90d, 0) as sends_90d,
        coalesce(engagement.opens_7d, 0) as opens_7d,
        coalesce(engagement.opens_30d, 0) as opens_30d,
        coalesce(engagement.opens_90d, 0) as opens_90d,
        coalesce(engagement.clicks_7d, 0) as clicks_7d,
        coalesce(engagement.clicks_30d, 0) as clicks_30d,
        coalesce(engagement.clicks_90d, 0) as clicks_90d,
        coalesce(engagement.replies_30d, 0) as replies_30d,
        coalesce(engagement.replies_90d, 0) as replies_90d,
        engagement.last_open_at,
        engagement.last_click_at,
        coalesce(engagement.engagement_score, 0) as engagement_score,
        coalesce(engagement.engagement_trend, 'stable') as engagement_trend,
        coalesce(transactions.orders_count, 0) as orders_count,
        coalesce(transactions.orders_90d, 0) as orders_90d,
        coalesce(transactions.order_revenue, 0) as order_revenue,
        coalesce(transactions.revenue_180d, 0) as revenue_180d,
        coalesce(transactions.net_revenue, 0) as net_revenue,
        transactions.average_order_value,
        transactions.first_order_at,
        transactions.last_order_at,
        transactions.subscription_plan,
        transactions.subscription_status,
        coalesce(transactions.mrr, 0) as mrr,
        coalesce(transactions.refunds_count, 0) as refunds_count,
        coalesce(transactions.refunded_amount, 0) as refunded_amount,
        transactions.rfm_recency,
        transactions.rfm_frequency,
        transactions.rfm_monetary,
        coalesce(transactions.predicted_ltv, 0) as predicted_ltv,
        coalesce(transactions.currency, identity.currency) as currency,
        coalesce(conversations.open_tickets, 0) as open_tickets,
        conversations.last_ticket_topic,
        conversations.last_ticket_product,
        conversations.last_complaint_at,
        conversations.last_complaint_product,
        conversations.days_since_last_conversation,
        coalesce(behaviour.page_views_7d, 0) as page_views_7d,
        coalesce(behaviour.page_views_30d, 0) as page_views_30d,
        coalesce(behaviour.sessions_7d, 0) as sessions_7d,
        coalesce(behaviour.sessions_30d, 0) as sessions_30d,
        behaviour.top_category,
        behaviour.recently_viewed_products,
        behaviour.cart_items,
        recommendations.recommended_products,
        recommendations.viewed_not_bought_products,
        recommendations.top_recommendation_reason,
        coalesce(behaviour.cart_items_count, 0) as cart_items_count,
        behaviour.last_cart_added_at,
        behaviour.last_seen_at,
        consent.unsubscribed_at,
        consent.bounced_at,
        consent.complained_at,
        consent.newsletter_unsubscribed_at,
        consent.unclaimed_group_unsubscribed_at,
        consent.email_frequency,
        {{ is_valid_email('identity.email') }} as has_valid_email
    from customers
    left join identity on identity.customer_id = customers.customer_id
    left join engagement on engagement.customer_id = customers.customer_id
    left join consent on consent.customer_id = customers.customer_id
    left join transactions on transactions.customer_id = customers.customer_id
    left join conversations on conversations.customer_id = customers.customer_id
    left join behaviour on behaviour.customer_id = customers.customer_id
    left join recommendations on recommendations.customer_id = customers.customer_id
    left join timezones on timezones.country = identity.country
    left join first_seen on first_seen.customer_id = customers.customer_id

),

final as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(email as varchar) as email,
        cast(phone as varchar) as phone,
        cast(company as varchar) as company,
        cast(job_title as varchar) as job_title,
        cast(industry as varchar) as industry,
        cast(city as varchar) as city,
        cast(country as varchar) as country,
        cast(postcode as varchar) as postcode,
        cast(time_zone as varchar) as time_zone,
        cast(crm_created_at as timestamp) as crm_created_at,
        cast(sends_7d as integer) as sends_7d,
        cast(sends_30d as integer) as sends_30d,
        cast(sends_90d as integer) as sends_90d,
        cast(opens_7d as integer) as opens_7d,
        cast(opens_30d as integer) as opens_30d,
        cast(opens_90d as integer) as opens_90d,
        cast(clicks_7d as integer) as clicks_7d,
        cast(clicks_30d as integer) as clicks_30d,
        cast(clicks_90d as integer) as clicks_90d,
        cast(replies_30d as integer) as replies_30d,
        cast(replies_90d as integer) as replies_90d,
        cast(last_open_at as timestamp) as last_open_at,
        cast(last_click_at as timestamp) as last_click_at,
        cast(engagement_score as numeric(4, 1)) as engagement_score,
        cast(engagement_trend as varchar) as engagement_trend,
        cast(orders_count as integer) as orders_count,
        cast(orders_90d as integer) as orders_90d,
        cast(order_revenue as numeric(18, 2)) as order_revenue,
        cast(revenue_180d as numeric(18, 2)) as revenue_180d,
        cast(net_revenue as numeric(18, 2)) as net_revenue,
        cast(average_order_value as numeric(18, 2)) as average_order_value,
        cast(first_order_at as timestamp) as first_order_at,
        cast(last_order_at as timestamp) as last_order_at,
        cast(subscription_plan as varchar) as subscription_plan,
        cast(subscription_status as varchar) as subscription_status,
        cast(mrr as numeric(18, 2)) as mrr,
        cast(refunds_count as integer) as refunds_count,
        cast(refunded_amount as numeric(18, 2)) as refunded_amount,
        cast(rfm_recency as integer) as rfm_recency,
        cast(rfm_frequency as integer) as rfm_frequency,
        cast(rfm_monetary as integer) as rfm_monetary,
        cast(predicted_ltv as numeric(18, 2)) as predicted_ltv,
        cast(currency as varchar) as currency,
        cast(open_tickets as integer) as open_tickets,
        cast(last_ticket_topic as varchar) as last_ticket_topic,
        cast(last_ticket_product as varchar) as last_ticket_product,
        cast(last_complaint_at as timestamp) as last_complaint_at,
        cast(last_complaint_product as varchar) as last_complaint_product,
        cast(days_since_last_conversation as integer) as days_since_last_conversation,
        cast(page_views_7d as integer) as page_views_7d,
        cast(page_views_30d as integer) as page_views_30d,
        cast(sessions_7d as integer) as sessions_7d,
        cast(sessions_30d as integer) as sessions_30d,
        cast(top_category as varchar) as top_category,
        cast(recently_viewed_products as varchar) as recently_viewed_products,
        cast(cart_items as varchar) as cart_items,
        cast(recommended_products as varchar) as recommended_products,
        cast(viewed_not_bought_products as varchar) as viewed_not_bought_products,
        cast(top_recommendation_reason as varchar) as top_recommendation_reason,
        cast(cart_items_count as integer) as cart_items_count,
        cast(last_cart_added_at as timestamp) as last_cart_added_at,
        cast(last_seen_at as timestamp) as last_seen_at,
        cast(unsubscribed_at as timestamp) as unsubscribed_at,
        cast(bounced_at as timestamp) as bounced_at,
        cast(complained_at as timestamp) as complained_at,
        cast(newsletter_unsubscribed_at as timestamp) as newsletter_unsubscribed_at,
        cast(case when newsletter_unsubscribed_at is not null or unsubscribed_at is not null then 'unsubscribed' else 'subscribed' end as varchar) as newsletter_status,
        cast(coalesce(email_frequency, 'all') as varchar) as email_frequency,
        cast(unsubscribed_at is not null as boolean) as is_unsubscribed,
        cast(bounced_at is not null as boolean) as is_bounced,
        cast(complained_at is not null as boolean) as is_complained,
        cast(
            has_valid_email
            and unsubscribed_at is null
            and bounced_at is null
            and complained_at is null
            and unclaimed_group_unsubscribed_at is null
            as boolean
        ) as is_emailable,
        cast(
            (case when email is not null or first_name is not null then 1 else 0 end)
            + (case when sends_90d > 0 then 1 else 0 end)
            + (case when orders_count > 0 or subscription_status is not null then 1 else 0 end)
            + (case when open_tickets > 0 or last_ticket_topic is not null then 1 else 0 end)
            + (case when last_seen_at is not null then 1 else 0 end)
            as integer
        ) as profile_richness,
        cast(
            not coalesce(has_valid_email, false)
            or bounced_at is not null
            or coalesce(greatest(last_open_at, last_click_at, last_seen_at, last_order_at), crm_created_at)
            < {{ days_before(as_of(), var('stale_after_days')) }}
            as boolean
        ) as is_stale,
        {{ as_of() }} as profile_as_of
    from joined

)

select * from final
