-- One row per customer of the identity map with a fingerprint of its source records: the
-- incremental customer layers recompute a customer whose fingerprint changed (a merge, a
-- split, a record gained or lost).
with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        customer_id,
        md5(string_agg(source || ':' || source_record_id, '|' order by source, source_record_id)) as identity_fingerprint,
        count(*) as records_count
    from identities
    group by customer_id

)

select * from final
