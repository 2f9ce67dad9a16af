-- Final clusters (no ids yet; identity_registry gives each cluster its stable id).
--
-- 1. Connected components over every accepted edge (deterministic and fuzzy), computed on
--    the deterministic clusters: a deterministic cluster is a component of the accepted
--    deterministic edges, labelled by its smallest record key, so only the fuzzy edges
--    between two clusters join anything more, and a component's smallest cluster label is
--    its smallest record key. The propagation runs over the clusters those edges touch,
--    not over every record.
-- 2. Over-merge guards: a cluster larger than var identity_max_cluster_size, or one that
--    ends up holding two ids of an exclusive source through a chain of fuzzy edges, falls
--    back to its deterministic clusters.
-- 3. The rule that placed each record (its strongest accepted edge) and its match score.
with

deterministic as (

    select * from {{ ref('int_identity_clusters_deterministic') }}

),

edges as (

    select * from {{ ref('int_identity_edges_unioned') }}

),

fuzzy_edges as (

    select * from {{ ref('int_identity_edges_scored') }}

),

-- The accepted edges between two deterministic clusters, as edges between their labels
-- (a deterministic edge lies inside its cluster: assert_identity_components_converged).
cluster_edges as (

    select distinct
        da.deterministic_label as node_a,
        db.deterministic_label as node_b
    from fuzzy_edges
    inner join deterministic as da on da.record_key = fuzzy_edges.node_a
    inner join deterministic as db on db.record_key = fuzzy_edges.node_b
    where fuzzy_edges.is_accepted
        and da.deterministic_label <> db.deterministic_label

),

cluster_nodes as (

    select node_a as node from cluster_edges
    union
    select node_b from cluster_edges

),

{{ connected_components('labels', 'cluster_nodes', 'cluster_edges', rounds=10) }},

clustered as (

    select
        deterministic.record_key,
        deterministic.source,
        deterministic.source_record_id,
        deterministic.deterministic_label,
        coalesce(labels.label, deterministic.deterministic_label) as full_label
    from deterministic
    left join labels_10 as labels on labels.node = deterministic.deterministic_label

),

full_sizes as (

    select full_label, count(*) as records_count
    from clustered
    group by full_label

),

exclusive_counts as (

    select full_label, max(deterministic_clusters) as max_exclusive_ids
    from (
        select full_label, source, count(distinct deterministic_label) as deterministic_clusters
        from clustered
        where source in ({% for s in var('identity_exclusive_sources') %}'{{ s }}'{% if not loop.last %}, {% endif %}{% endfor %})
        group by full_label, source
    ) as per_source
    group by full_label

),

cluster_checks as (

    select
        full_sizes.full_label,
        full_sizes.records_count,
        coalesce(exclusive_counts.max_exclusive_ids, 0) as max_exclusive_ids
    from full_sizes
    left join exclusive_counts on exclusive_counts.full_label = full_sizes.full_label

),

guarded as (

    select
        clustered.*,
        case
            when cluster_checks.records_count > {{ var('identity_max_cluster_size') }}
                or cluster_checks.max_exclusive_ids > 1
                then clustered.deterministic_label
            else clustered.full_label
        end as cluster_label,
        cluster_checks.records_count > {{ var('identity_max_cluster_size') }} as is_oversized
    from clustered
    inner join cluster_checks on cluster_checks.full_label = clustered.full_label

),

incident as (

    select node_a as record_key, rule, score from edges where is_accepted
    union all
    select node_b, rule, score from edges where is_accepted

),

-- The rule that placed each record: a deterministic edge before a fuzzy one (in the order
-- below; of two rules alike, the first by name), then the highest score. Two aggregates:
-- a window ranking every edge end sorted them all.
ranked_incident as (

    select
        record_key,
        rule,
        score,
        case rule
            when 'billing_metadata_crm_contact_id' then 1
            when 'web_user_id' then 2
            when 'anonymous_id_to_user_id' then 3
            when 'email' then 4
            when 'fuzzy' then 6
            else 5
        end as rule_rank
    from incident

),

best_rank as (

    select record_key, min(rule_rank) as rule_rank
    from ranked_incident
    group by record_key

),

best_rule as (

    select
        ranked_incident.record_key,
        min(ranked_incident.rule) as rule,
        max(ranked_incident.score) as score
    from ranked_incident
    inner join best_rank
        on best_rank.record_key = ranked_incident.record_key
        and best_rank.rule_rank = ranked_incident.rule_rank
    group by ranked_incident.record_key

),

final as (

    select
        guarded.source,
        guarded.source_record_id,
        guarded.record_key,
        guarded.cluster_label,
        guarded.full_label,
        guarded.is_oversized,
        coalesce(best_rule.rule, 'singleton') as match_rule,
        cast(
            case
                when best_rule.rule = 'fuzzy' then 1.0 - 1.0 / (1.0 + power(2.0, best_rule.score))
                else 1.0
            end as numeric(5, 4)
        ) as match_score
    from guarded
    left join best_rule on best_rule.record_key = guarded.record_key

)

select * from final
