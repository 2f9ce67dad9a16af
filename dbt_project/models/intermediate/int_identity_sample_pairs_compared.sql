{{ identity_pairs_config() }}

-- Every pair of a deterministic sample of var identity_u_sample_records fuzzy-tier records
-- (ordered by a hash of the record key; nearly all such pairs are two different people),
-- with the level of every comparison: int_identity_u_probabilities counts them.
--
-- Incremental and exact like int_identity_pairs_compared (macros/identity_incremental.sql):
-- a day that adds, drops or changes a few sampled records compares only their pairs; the
-- sample of 1,500 records is 1.1 million pairs, which took 6 s to compare every day.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

sampled as materialized (

    select
        *,
        {{ identity_record_fingerprint() }} as fingerprint
    from records
    where is_fuzzy_candidate
    order by md5(record_key)
    limit {{ var('identity_u_sample_records') }}

),

pairs as (

    select a.record_key as node_a, b.record_key as node_b
    from sampled as a
    inner join sampled as b on a.record_key < b.record_key

),

{{ identity_compared_pairs('sampled', 'pairs') }}

select * from final
