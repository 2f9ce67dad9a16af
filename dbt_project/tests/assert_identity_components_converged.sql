-- Fails when an accepted edge joins records whose connected-component labels differ, i.e.
-- the unrolled label propagation needed more rounds (deterministic tier and full graph).
with

resolved as (

    select * from {{ ref('int_identities_resolved') }}

),

deterministic as (

    select * from {{ ref('int_identity_clusters_deterministic') }}

),

edges as (

    select * from {{ ref('int_identity_edges_scored') }}
    where is_accepted

)

select edges.node_a, edges.node_b, edges.rule
from edges
inner join resolved as a on a.record_key = edges.node_a
inner join resolved as b on b.record_key = edges.node_b
inner join deterministic as da on da.record_key = edges.node_a
inner join deterministic as db on db.record_key = edges.node_b
where a.full_label <> b.full_label
    or (edges.rule <> 'fuzzy' and da.deterministic_label <> db.deterministic_label)
