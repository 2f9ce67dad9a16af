{{ config(materialized='view') }}

-- Every edge identity resolution weighed: the deterministic tier's and the fuzzy tier's,
-- in one shape. A view: both tiers are tables already, and a table here would copy the
-- millions of deterministic edges once more every day.
with

deterministic_edges as (

    select * from {{ ref('int_identity_edges_deterministic') }}

),

fuzzy_edges as (

    select * from {{ ref('int_identity_edges_scored') }}

),

final as (

    select
        node_a,
        node_b,
        rule,
        cast(null as numeric(6, 2)) as score,
        is_accepted,
        rejection_reason,
        cast(null as varchar) as match_details
    from deterministic_edges

    union all

    select node_a, node_b, rule, score, is_accepted, rejection_reason, match_details
    from fuzzy_edges

)

select * from final
