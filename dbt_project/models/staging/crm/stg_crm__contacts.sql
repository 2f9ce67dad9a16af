with

source as (

    select * from {{ source('crm', 'contacts') }}

),

renamed as (

    select
        cast(contact_id as varchar) as contact_id,
        nullif(trim(email), '') as email,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        nullif(trim(phone), '') as phone,
        nullif(trim(company), '') as company,
        nullif(trim(job_title), '') as job_title,
        nullif(trim(industry), '') as industry,
        nullif(trim(street), '') as street,
        nullif(trim(city), '') as city,
        nullif(trim(postcode), '') as postcode,
        nullif(trim(state), '') as state,
        upper(nullif(trim(country), '')) as country,
        cast(birth_date as date) as birth_date,
        lower(nullif(trim(lifecycle_stage), '')) as lifecycle_stage,
        case
            when lower(trim(email_opt_in)) in ('true', 't', '1', 'yes', 'y') then true
            when lower(trim(email_opt_in)) in ('false', 'f', '0', 'no', 'n') then false
        end as email_opt_in,
        cast(nullif(trim(email_opt_in_at), '') as timestamp) as email_opt_in_at,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        _flags as quality_flags,
        _batch_id as batch_id,
        cast(_loaded_at as timestamp) as loaded_at,
        {{ ingested_at() }},
        {{ version_rank('contact_id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
