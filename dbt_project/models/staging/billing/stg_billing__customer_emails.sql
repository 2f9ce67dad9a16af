-- Every address a billing customer has had, one row per customer and address, with when
-- the billing system first and last showed it. Like stg_crm__contact_emails: a billing
-- email change must not cut the customer off from records that carry the old address.
with

source as (

    select * from {{ source('billing', 'customers') }}

),

renamed as (

    select
        cast(id as varchar) as billing_customer_id,
        nullif(trim(email), '') as email,
        cast(_record_ts as timestamp) as seen_at
    from source

),

final as (

    select
        billing_customer_id,
        email,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at
    from renamed
    where billing_customer_id is not null and email is not null
    group by billing_customer_id, email

)

select * from final
