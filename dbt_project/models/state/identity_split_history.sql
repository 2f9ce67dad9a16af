{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false) }}

-- Records that left a customer id which still exists (a cluster split, for instance when a
-- corrected email undoes a fuzzy match): the id they left, the id they now carry and how
-- many records moved, on the run date it was first seen. A rerun adds nothing.
with

registry as (

    select * from {{ ref('identity_registry') }}

),

split_pairs as (

    select
        assigned_on as run_date,
        previous_customer_id as split_customer_id,
        customer_id as new_customer_id,
        count(*) as records_moved
    from registry
    where change_kind = 'split'
    group by assigned_on, previous_customer_id, customer_id

),

final as (

    select * from split_pairs
    {% if is_incremental() %}
    where not exists (
            select 1 from {{ this }} as recorded
            where recorded.split_customer_id = split_pairs.split_customer_id
                and recorded.new_customer_id = split_pairs.new_customer_id
                and recorded.run_date = split_pairs.run_date
        )
    {% endif %}

)

select * from final
