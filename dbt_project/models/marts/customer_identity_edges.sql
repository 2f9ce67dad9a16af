-- The edges identity resolution weighed, with the customers on both ends: the explanation
-- of every merge (accepted) and of every near miss (rejected, with the reason; a fuzzy pair
-- counts as one from var identity_near_miss_score up).
with

edges as (

    select * from {{ ref('int_identity_edges_unioned') }}

),

resolved as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        cast(edges.node_a as varchar) as record_key_a,
        cast(edges.node_b as varchar) as record_key_b,
        cast(a.customer_id as varchar) as customer_id_a,
        cast(b.customer_id as varchar) as customer_id_b,
        cast(edges.rule as varchar) as match_rule,
        cast(edges.score as numeric(6, 2)) as match_score,
        cast(edges.is_accepted as boolean) as is_accepted,
        cast(edges.rejection_reason as varchar) as rejection_reason,
        cast(edges.match_details as varchar) as match_details
    from edges
    left join resolved as a on a.record_key = edges.node_a
    left join resolved as b on b.record_key = edges.node_b

)

select * from final
