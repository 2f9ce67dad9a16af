with

source as (

    select * from {{ source('raw', 'crm__companies') }}

),

renamed as (

    select
        cast(company_id as varchar) as company_id,
        nullif(trim(name), '') as company_name,
        lower(nullif(trim(domain), '')) as domain,
        nullif(trim(industry), '') as industry,
        cast(nullif(trim(employees), '') as integer) as employee_count,
        upper(nullif(trim(country), '')) as country,
        row_number() over (partition by company_id order by _loaded_at desc) as version_rank
    from source

),

final as (

    select * from renamed where version_rank = 1

)

select * from final
