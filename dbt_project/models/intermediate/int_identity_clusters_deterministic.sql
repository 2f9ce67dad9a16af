{{ config(
    materialized='incremental',
    unique_key='record_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="delete from {{ this }} where is_removed",
) }}

-- Deterministic tier: connected components over int_identity_edges_deterministic. A
-- component's label is its smallest record key.
--
-- Incremental, and exact. Each record keeps a digest of its neighbours (the records its
-- accepted edges join it to; macros/cross_db.sql set_digest: no sort, no string of them).
-- An edge added or removed changes the digest of both its ends, so the components computed
-- again are:
--   - yesterday's components that hold a record whose digest changed or that is gone;
--   - the new records.
-- An edge that did not change joins two records of one of yesterday's components, so those
-- records and the edges between them close the computation: every other record keeps its
-- label. This holds because every edge end is a record (tested on the edges model). A gone
-- record becomes a removal row, which the post-hook deletes. _labelled_at: when the record
-- was labelled (assert_identity_components_converged checks the newest build's records).
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

edges as (

    select node_a, node_b from {{ ref('int_identity_edges_deterministic') }}
    where is_accepted

),

neighbours as materialized (

    select
        node,
        {{ set_digest('neighbour') }} as edge_digest
    from (
        select node_a as node, node_b as neighbour from edges
        union
        select node_b as node, node_a as neighbour from edges
    ) as directed
    group by node

),

current_records as materialized (

    select
        records.record_key,
        records.source,
        records.source_record_id,
        coalesce(neighbours.edge_digest, '') as edge_digest
    from records
    left join neighbours on neighbours.node = records.record_key

),
{% if is_incremental() %}

previous as (

    -- A table written before the digests has none: every record counts as changed.
    select
        record_key,
        deterministic_label,
        {{ prior_column('_edge_digest', "'(none)'") }} as _edge_digest
    from {{ this }}

),

-- Yesterday's records against today's, in one full join.
matched as materialized (

    select
        coalesce(current_records.record_key, previous.record_key) as record_key,
        previous.deterministic_label,
        current_records.record_key is null as is_gone,
        previous.record_key is null as is_new,
        coalesce(current_records.edge_digest <> previous._edge_digest, false) as is_changed
    from current_records
    full outer join previous on previous.record_key = current_records.record_key

),

dirty_labels as (

    select distinct deterministic_label as label
    from matched
    where is_gone or is_changed

),

affected as materialized (

    select current_records.*
    from current_records
    inner join matched on matched.record_key = current_records.record_key
    left join dirty_labels on dirty_labels.label = matched.deterministic_label
    where matched.is_new or dirty_labels.label is not null

),

component_edges as (

    select edges.node_a, edges.node_b
    from edges
    inner join affected on affected.record_key = edges.node_a

),
{% else %}

affected as (

    select * from current_records

),

component_edges as (

    select * from edges

),
{% endif %}

nodes as (

    select record_key as node from affected

),

{{ connected_components('labels', 'nodes', 'component_edges', rounds=8) }},

final as (

    select
        affected.record_key,
        affected.source,
        affected.source_record_id,
        labels.label as deterministic_label,
        affected.edge_digest as _edge_digest,
        cast(current_timestamp as timestamp) as _labelled_at,
        false as is_removed
    from affected
    inner join labels_8 as labels on labels.node = affected.record_key
    {%- if is_incremental() %}

    union all

    select
        record_key,
        cast(null as varchar) as source,
        cast(null as varchar) as source_record_id,
        cast(null as varchar) as deterministic_label,
        cast(null as varchar) as _edge_digest,
        cast(null as timestamp) as _labelled_at,
        true as is_removed
    from matched
    where is_gone
    {%- endif %}

)

select * from final
