with

source as (

    select * from {{ source('billing', 'refunds') }}

),

renamed as (

    select
        cast(id as varchar) as refund_id,
        charge as charge_id,
        {{ minor_to_major('amount', 'currency') }} as amount,
        lower(currency) as currency,
        lower(status) as status,
        reason,
        cast(created as timestamp) as created_at,
        {{ version_rank('id') }}
    from source

),

final as (

    {{ latest_version('renamed') }}

)

select * from final
