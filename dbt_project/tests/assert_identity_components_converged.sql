-- Fails when an accepted edge joins records whose connected-component labels differ, i.e.
-- the unrolled label propagation needed more rounds (deterministic tier and full graph).
-- (Comparisons are computed as columns of a materialised CTE: as a filter over two joined
-- tables they become a nested-loop join.)
with

-- Both labels of each record, joined once, so each accepted edge looks up its two ends
-- once (four lookups per edge: 1.20 s against 0.72 s at 100,000 contacts).
labels as materialized (

    select
        resolved.record_key,
        resolved.full_label,
        deterministic.deterministic_label
    from {{ ref('int_identity_clusters_resolved') }} as resolved
    inner join {{ ref('int_identity_clusters_deterministic') }} as deterministic
        on deterministic.record_key = resolved.record_key

),

edges as (

    select * from {{ ref('int_identity_edges_unioned') }}
    where is_accepted

),

checked as materialized (

    select
        edges.node_a,
        edges.node_b,
        edges.rule,
        case when a.full_label = b.full_label then 0 else 1 end as is_split,
        case
            when edges.rule <> 'fuzzy' and a.deterministic_label <> b.deterministic_label then 1
            else 0
        end as is_deterministic_split
    from edges
    inner join labels as a on a.record_key = edges.node_a
    inner join labels as b on b.record_key = edges.node_b

)

select node_a, node_b, rule
from checked
where is_split = 1 or is_deterministic_split = 1
