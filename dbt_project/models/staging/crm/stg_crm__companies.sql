with

source as (

    select * from {{ source('crm', 'companies') }}

),

renamed as (

    select
        cast(company_id as varchar) as company_id,
        nullif(trim(name), '') as company_name,
        lower(nullif(trim(domain), '')) as domain,
        nullif(trim(industry), '') as industry,
        cast(nullif(trim(employees), '') as integer) as employee_count,
        upper(nullif(trim(country), '')) as country,
        {{ version_rank('company_id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
