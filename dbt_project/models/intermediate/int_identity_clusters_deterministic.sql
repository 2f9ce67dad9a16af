-- Deterministic tier: connected components over int_identity_edges_deterministic.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

edges as (

    select node_a, node_b from {{ ref('int_identity_edges_deterministic') }}
    where is_accepted

),

nodes as (

    select record_key as node from records

),

{{ connected_components('labels', 'nodes', 'edges', rounds=8) }},

final as (

    select
        records.record_key,
        records.source,
        records.source_record_id,
        labels.label as deterministic_label
    from records
    inner join labels_8 as labels on labels.node = records.record_key

)

select * from final
