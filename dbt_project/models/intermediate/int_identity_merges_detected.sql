-- This run's merges: previous customer ids that now belong to a cluster whose survivor id
-- is different. profilecast appends them to identity_merge_history after each build.
with

resolved as (

    select * from {{ ref('int_identities_resolved') }}

),

registry as (

    select * from {{ source('state', 'identity_registry') }}

),

final as (

    select distinct
        registry.customer_id as merged_customer_id,
        resolved.customer_id as survivor_customer_id
    from resolved
    inner join registry
        on registry.source = resolved.source
        and registry.source_record_id = resolved.source_record_id
    where registry.customer_id <> resolved.customer_id
        and not exists (
            select 1 from resolved as still
            where still.customer_id = registry.customer_id
        )

)

select * from final
