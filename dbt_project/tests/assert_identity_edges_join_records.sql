-- Fails for a deterministic edge with an end that is not a record. The incremental
-- deterministic clusters rely on it: a record's neighbour digest then sees every change of
-- connectivity around it (int_identity_clusters_deterministic).
with

records as (

    select record_key from {{ ref('int_identity_records_unioned') }}

),

edges as (

    select node_a, node_b, rule from {{ ref('int_identity_edges_deterministic') }}

),

ends as (

    select node_a as node, rule from edges
    union all
    select node_b as node, rule from edges

)

select ends.node, ends.rule
from ends
left join records on records.record_key = ends.node
where records.record_key is null
