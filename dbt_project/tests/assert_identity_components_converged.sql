-- Fails when an accepted edge joins records whose connected-component labels differ, i.e.
-- the unrolled label propagation needed more rounds (deterministic tier and full graph).
-- (Comparisons are computed as columns of a materialised CTE: as a filter over two joined
-- tables they become a nested-loop join.)
with

resolved as (

    select * from {{ ref('int_identity_clusters_resolved') }}

),

deterministic as (

    select * from {{ ref('int_identity_clusters_deterministic') }}

),

edges as (

    select * from {{ ref('int_identity_edges_scored') }}
    where is_accepted

),

checked as materialized (

    select
        edges.node_a,
        edges.node_b,
        edges.rule,
        case when a.full_label = b.full_label then 0 else 1 end as is_split,
        case
            when edges.rule <> 'fuzzy' and da.deterministic_label <> db.deterministic_label then 1
            else 0
        end as is_deterministic_split
    from edges
    inner join resolved as a on a.record_key = edges.node_a
    inner join resolved as b on b.record_key = edges.node_b
    inner join deterministic as da on da.record_key = edges.node_a
    inner join deterministic as db on db.record_key = edges.node_b

)

select node_a, node_b, rule
from checked
where is_split = 1 or is_deterministic_split = 1
