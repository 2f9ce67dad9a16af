-- One row per source record: its cluster, the rule that placed it, and its stable
-- customer_id from identity_registry.
with

clusters as (

    select * from {{ ref('int_identity_clusters_resolved') }}

),

registry as (

    select * from {{ ref('identity_registry') }}

),

final as (

    select
        clusters.source,
        clusters.source_record_id,
        clusters.record_key,
        registry.customer_id,
        clusters.cluster_label,
        clusters.full_label,
        clusters.is_oversized,
        clusters.match_rule,
        clusters.match_score
    from clusters
    inner join registry
        on registry.source = clusters.source
        and registry.source_record_id = clusters.source_record_id

)

select * from final
