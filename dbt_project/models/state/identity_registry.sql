{{ config(
    materialized='incremental',
    unique_key=['source', 'source_record_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    full_refresh=false,
) }}

-- The customer id of every source record, kept from build to build (never full-refreshed).
--
-- Stable ids: each cluster keeps the oldest customer_id its records had in the previous
-- build ({{ this }}). When clusters merge, that survivor keeps its id and the other ids
-- retire (change_kind 'merge'); when a cluster splits, the part with the most records keeps
-- the id and the records that left get another one (change_kind 'split'). A cluster with no
-- previous id gets 'pc_' + a hash of its smallest record key, so unchanged data yields
-- identical ids run after run, and a rerun of an interval leaves this table as it was.
--
-- previous_customer_id, assigned_on and change_kind describe the record's latest change and
-- stay until the next one, so identity_merge_history and identity_split_history can always
-- catch up on it.
with

clusters as (

    select * from {{ ref('int_identity_clusters_resolved') }}

),

previous as (

    {% if is_incremental() %}
    select
        source,
        source_record_id,
        customer_id,
        first_assigned_at,
        {{ prior_column('previous_customer_id', 'cast(null as varchar)') }} as previous_customer_id,
        {{ prior_column('assigned_on', 'cast(null as date)') }} as assigned_on,
        {{ prior_column('change_kind', "cast('new' as varchar)") }} as change_kind
    from {{ this }}
    {% else %}
    select
        cast(null as varchar) as source,
        cast(null as varchar) as source_record_id,
        cast(null as varchar) as customer_id,
        cast(null as timestamp) as first_assigned_at,
        cast(null as varchar) as previous_customer_id,
        cast(null as date) as assigned_on,
        cast(null as varchar) as change_kind
    where 1 = 0
    {% endif %}

),

cluster_sizes as (

    select cluster_label, count(*) as records_count
    from clusters
    group by cluster_label

),

previous_ids as (

    select
        clusters.cluster_label,
        previous.customer_id,
        min(previous.first_assigned_at) as first_assigned_at,
        count(*) as records_with_id
    from clusters
    inner join previous
        on previous.source = clusters.source
        and previous.source_record_id = clusters.source_record_id
    group by clusters.cluster_label, previous.customer_id

),

preferred as (

    select
        cluster_label,
        customer_id,
        row_number() over (
            partition by cluster_label
            order by first_assigned_at asc, records_with_id desc, customer_id asc
        ) as preference
    from previous_ids

),

claims as (

    select
        preferred.cluster_label,
        preferred.customer_id,
        row_number() over (
            partition by preferred.customer_id
            order by cluster_sizes.records_count desc, preferred.cluster_label asc
        ) as claim_rank
    from preferred
    inner join cluster_sizes on cluster_sizes.cluster_label = preferred.cluster_label
    where preferred.preference = 1

),

assigned as (

    select
        cluster_sizes.cluster_label,
        coalesce(claims.customer_id, {{ hash_id('pc_', 'cluster_sizes.cluster_label') }}) as customer_id
    from cluster_sizes
    left join claims
        on claims.cluster_label = cluster_sizes.cluster_label and claims.claim_rank = 1

),

id_ages as (

    select customer_id, min(first_assigned_at) as first_assigned_at
    from previous
    group by customer_id

),

surviving_ids as (

    select distinct customer_id from assigned

),

final as (

    select
        clusters.source,
        clusters.source_record_id,
        assigned.customer_id,
        coalesce(id_ages.first_assigned_at, {{ as_of() }}) as first_assigned_at,
        case
            when previous.customer_id = assigned.customer_id then previous.previous_customer_id
            else previous.customer_id
        end as previous_customer_id,
        case
            when previous.customer_id = assigned.customer_id then previous.assigned_on
            else {{ run_date() }}
        end as assigned_on,
        case
            when previous.customer_id is null then 'new'
            when previous.customer_id = assigned.customer_id then previous.change_kind
            when surviving_ids.customer_id is not null then 'split'
            else 'merge'
        end as change_kind
    from clusters
    inner join assigned on assigned.cluster_label = clusters.cluster_label
    left join previous
        on previous.source = clusters.source
        and previous.source_record_id = clusters.source_record_id
    left join id_ages on id_ages.customer_id = assigned.customer_id
    left join surviving_ids on surviving_ids.customer_id = previous.customer_id

)

select * from final
