with

source as (

    select * from {{ source('raw', 'billing__refunds') }}

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
        row_number() over (partition by id order by _loaded_at desc) as version_rank
    from source

),

final as (

    select * from renamed where version_rank = 1

)

select * from final
