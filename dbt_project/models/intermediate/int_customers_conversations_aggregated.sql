-- Conversation layer from support tickets. A ticket is a complaint when its subject or body
-- carries negative wording (see complaint_terms below); its product is then the one a
-- campaign must not promote.
{% set complaint_terms = ['damaged', 'refund', 'unacceptable', 'disappointed', 'terrible', 'charged twice', 'broken', 'late'] %}
with

tickets as (

    select * from {{ ref('stg_crm__tickets') }}
    where created_at < {{ as_of() }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}
    where source = 'crm'

),

classified as (

    select
        identities.customer_id,
        tickets.*,
        (
            {% for term in complaint_terms %}
            lower(coalesce(tickets.subject, '') || ' ' || coalesce(tickets.body, '')) like '%{{ term }}%'{% if not loop.last %} or {% endif %}
            {% endfor %}
        ) as is_complaint,
        row_number() over (partition by identities.customer_id order by tickets.created_at desc) as recency_rank
    from tickets
    inner join identities on identities.source_record_id = tickets.contact_id

),

complaints_ranked as (

    select
        customer_id,
        created_at,
        product,
        row_number() over (partition by customer_id order by created_at desc) as complaint_rank
    from classified
    where is_complaint

),

totals as (

    select
        customer_id,
        count(*) as tickets_count,
        sum(case when status in ('open', 'pending', 'new') then 1 else 0 end) as open_tickets,
        sum(case when is_complaint then 1 else 0 end) as complaints_count,
        max(coalesce(updated_at, created_at)) as last_conversation_at
    from classified
    group by customer_id

),

final as (

    select
        totals.customer_id,
        totals.tickets_count,
        totals.open_tickets,
        totals.complaints_count,
        latest.subject as last_ticket_topic,
        latest.product as last_ticket_product,
        complaint.created_at as last_complaint_at,
        complaint.product as last_complaint_product,
        totals.last_conversation_at,
        {{ days_between('totals.last_conversation_at', as_of()) }} as days_since_last_conversation
    from totals
    left join classified as latest
        on latest.customer_id = totals.customer_id and latest.recency_rank = 1
    left join complaints_ranked as complaint
        on complaint.customer_id = totals.customer_id and complaint.complaint_rank = 1

)

select * from final
