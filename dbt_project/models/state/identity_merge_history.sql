{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false) }}

-- Every retired customer id and the survivor its records joined, recorded on the run date
-- the merge was first seen. Read from identity_registry's latest change per record, so a
-- build that stops between the two still records the merge next time; a rerun adds nothing.
with

registry as (

    select * from {{ ref('identity_registry') }}

),

merge_pairs as (

    select distinct
        assigned_on as run_date,
        previous_customer_id as merged_customer_id,
        customer_id as survivor_customer_id
    from registry
    where change_kind = 'merge'

),

final as (

    select * from merge_pairs
    {% if is_incremental() %}
    where not exists (
            select 1 from {{ this }} as recorded
            where recorded.merged_customer_id = merge_pairs.merged_customer_id
                and recorded.survivor_customer_id = merge_pairs.survivor_customer_id
        )
    {% endif %}

)

select * from final
