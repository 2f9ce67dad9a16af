-- Every address a CRM contact has had, one row per contact and address, with when the CRM
-- first and last showed it. An email change in the CRM must not cut the contact off from the
-- records that carry its old address (ESP events, web identifies), so identity links on
-- these as well as on the current address.
with

source as (

    select * from {{ source('crm', 'contacts') }}

),

renamed as (

    select
        cast(contact_id as varchar) as contact_id,
        nullif(trim(email), '') as email,
        cast(updated_at as timestamp) as updated_at
    from source

),

final as (

    select
        contact_id,
        email,
        min(updated_at) as first_seen_at,
        max(updated_at) as last_seen_at
    from renamed
    where contact_id is not null and email is not null
    group by contact_id, email

)

select * from final
