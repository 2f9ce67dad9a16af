-- One row per customer of the identity map with a fingerprint of its source records: the
-- incremental customer layers recompute a customer whose fingerprint changed (a merge, a
-- split, a record gained or lost). The fingerprint is a digest of the set of its record
-- keys (macros/cross_db.sql set_digest: no sort, no string of them).
with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        customer_id,
        {{ set_digest("source || ':' || source_record_id") }} as identity_fingerprint,
        count(*) as records_count
    from identities
    group by customer_id

)

select * from final
