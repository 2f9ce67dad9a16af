-- Fails when an accepted edge joins records whose connected-component labels differ, i.e.
-- the unrolled label propagation needed more rounds (deterministic tier and full graph).
--
-- Two checks, each over the edges whose labels the build may have changed:
--   * a deterministic edge, on the deterministic labels of the records the newest build
--     labelled (int_identity_clusters_deterministic._labelled_at). The other records keep
--     the labels of a build this test passed: an edge added or removed relabels both of
--     its ends' components, so an edge between two records not labelled again joined them
--     then as now. A first build or a full refresh labels, and so checks, every record;
--   * a fuzzy edge, on the full labels. int_identity_clusters_resolved gives a record its
--     deterministic cluster's full label, so a deterministic edge, inside one deterministic
--     cluster, cannot join two full labels: the fuzzy edges are the ones to check.
-- At a million contacts the next day, that is the edges of the records labelled again and
-- 16,586 accepted fuzzy edges, instead of both ends of all 6.7 million accepted edges.
-- (Comparisons are computed as columns of a materialised CTE: as a filter over two joined
-- tables they become a nested-loop join.)
with

deterministic as (

    select record_key, deterministic_label, _labelled_at
    from {{ ref('int_identity_clusters_deterministic') }}

),

relabelled as materialized (

    select record_key
    from deterministic
    where _labelled_at = (select max(_labelled_at) from deterministic)

),

deterministic_edges as (

    select node_a, node_b, rule
    from {{ ref('int_identity_edges_deterministic') }}
    where is_accepted
        and (
            node_a in (select record_key from relabelled)
            or node_b in (select record_key from relabelled)
        )

),

fuzzy_edges as (

    select node_a, node_b, rule
    from {{ ref('int_identity_edges_scored') }}
    where is_accepted

),

resolved as (

    select record_key, full_label
    from {{ ref('int_identity_clusters_resolved') }}

),

checked as materialized (

    select
        deterministic_edges.node_a,
        deterministic_edges.node_b,
        deterministic_edges.rule,
        case when a.deterministic_label = b.deterministic_label then 0 else 1 end as is_split
    from deterministic_edges
    inner join deterministic as a on a.record_key = deterministic_edges.node_a
    inner join deterministic as b on b.record_key = deterministic_edges.node_b

    union all

    select
        fuzzy_edges.node_a,
        fuzzy_edges.node_b,
        fuzzy_edges.rule,
        case when a.full_label = b.full_label then 0 else 1 end as is_split
    from fuzzy_edges
    inner join resolved as a on a.record_key = fuzzy_edges.node_a
    inner join resolved as b on b.record_key = fuzzy_edges.node_b

)

select node_a, node_b, rule
from checked
where is_split = 1
