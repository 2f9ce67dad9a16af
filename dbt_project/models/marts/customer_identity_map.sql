with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        cast(source as varchar) as source,
        cast(source_record_id as varchar) as source_record_id,
        cast(customer_id as varchar) as customer_id,
        cast(match_rule as varchar) as match_rule,
        cast(match_score as numeric(5, 4)) as match_score
    from identities

)

select * from final
