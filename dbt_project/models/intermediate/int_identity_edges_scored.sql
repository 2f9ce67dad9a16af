-- Every edge identity resolution considered, and whether it was accepted.
--
-- Deterministic edges (email, CRM contact id, web userId, anonymousId -> userId) are always
-- accepted. Fuzzy candidates come from blocking (same phone; same birth date and name
-- initials; same full name; same postcode, or
-- employer domain, and last-name prefix), skipping blocks larger than
-- var identity_block_size_cap, and are scored in the Fellegi-Sunter spirit by adding log2
-- Bayes factors per compared field:
--   first name  same (after nicknames) +4, similar (Levenshtein >= 0.8) +2, different -3
--   last name   same +5, similar +2.5, different -4;  first/last swapped: +8 for both
--   phone       same +8, different -2        birth date  same +7, one typo +2, different -6
--   postcode    same +3, different -1        city        same +1, different -0.5
--   employer    billing work-email domain = CRM company's domain +6 (no penalty otherwise)
-- (a missing value on either side scores 0). A pair is accepted at
-- var identity_match_threshold or above, unless it would join two clusters that each hold a
-- different id of an exclusive source (var identity_exclusive_sources).
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

deterministic as (

    select * from {{ ref('int_identity_clusters_deterministic') }}

),

deterministic_edges as (

    select node_a, node_b, rule from {{ ref('int_identity_edges_deterministic') }}

),

fuzzy_records as (

    select *
    from records
    where source in ('crm', 'billing')
        and first_name_key is not null
        and last_name_key is not null

),

blocked as (

    select record_key, 'phone:' || phone_key as block_key
    from fuzzy_records
    where phone_key is not null

    union all

    select
        record_key,
        'dob:' || cast(birth_date as varchar) || ':'
            || least(substr(first_name_key, 1, 2), substr(last_name_key, 1, 2))
            || greatest(substr(first_name_key, 1, 2), substr(last_name_key, 1, 2))
    from fuzzy_records
    where birth_date is not null

    union all

    select record_key, 'postcode:' || postcode_key || ':' || substr(last_name_key, 1, 3)
    from fuzzy_records
    where postcode_key is not null

    union all

    select record_key, 'name:' || first_name_key || ':' || last_name_key
    from fuzzy_records


    union all

    select record_key, 'employer:' || employer_domain_key || ':' || substr(last_name_key, 1, 3)
    from fuzzy_records
    where employer_domain_key is not null

),

usable_blocks as (

    select block_key
    from blocked
    group by block_key
    having count(*) between 2 and {{ var('identity_block_size_cap') }}

),

pairs as (

    select distinct a.record_key as node_a, b.record_key as node_b
    from blocked as a
    inner join usable_blocks on usable_blocks.block_key = a.block_key
    inner join blocked as b on b.block_key = a.block_key and a.record_key < b.record_key

),

-- Materialised, with the label comparison computed as a column: written as a filter on two
-- columns, the optimiser turned it into a nested-loop join of every pair of labels.
labelled_pairs as materialized (

    select
        pairs.node_a,
        pairs.node_b,
        da.deterministic_label as label_a,
        db.deterministic_label as label_b,
        case when da.deterministic_label = db.deterministic_label then 1 else 0 end as is_same_cluster
    from pairs
    inner join deterministic as da on da.record_key = pairs.node_a
    inner join deterministic as db on db.record_key = pairs.node_b

),

compared as (

    select
        pairs.node_a,
        pairs.node_b,
        pairs.label_a,
        pairs.label_b,
        case
            when a.first_name_key = b.last_name_key and a.last_name_key = b.first_name_key
                and a.first_name_key <> a.last_name_key then 8.0
            else
                case
                    when a.first_name_key = b.first_name_key then 4.0
                    when {{ name_similarity('a.first_name_key', 'b.first_name_key') }} >= 0.8 then 2.0
                    else -3.0
                end
                + case
                    when a.last_name_key = b.last_name_key then 5.0
                    when {{ name_similarity('a.last_name_key', 'b.last_name_key') }} >= 0.8 then 2.5
                    else -4.0
                end
        end as name_score,
        case
            when a.phone_key is null or b.phone_key is null then 0.0
            when a.phone_key = b.phone_key then 8.0
            else -2.0
        end as phone_score,
        case
            when a.birth_date is null or b.birth_date is null then 0.0
            when a.birth_date = b.birth_date then 7.0
            when levenshtein(cast(a.birth_date as varchar), cast(b.birth_date as varchar)) = 1 then 2.0
            else -6.0
        end as birth_date_score,
        case
            when a.postcode_key is null or b.postcode_key is null then 0.0
            when a.postcode_key = b.postcode_key then 3.0
            else -1.0
        end as postcode_score,
        case
            when a.city_key is null or b.city_key is null then 0.0
            when a.city_key = b.city_key then 1.0
            else -0.5
        end as city_score,
        case
            when a.employer_domain_key is not null and a.employer_domain_key = b.employer_domain_key then 6.0
            else 0.0
        end as employer_score
    from labelled_pairs as pairs
    inner join records as a on a.record_key = pairs.node_a
    inner join records as b on b.record_key = pairs.node_b
    where pairs.is_same_cluster = 0

),

scored as (

    select
        *,
        name_score + phone_score + birth_date_score + postcode_score + city_score + employer_score as score
    from compared

),

exclusive_ids as (

    select deterministic_label, source, min(source_record_id) as some_id, count(*) as ids
    from deterministic
    where source in ({% for s in var('identity_exclusive_sources') %}'{{ s }}'{% if not loop.last %}, {% endif %}{% endfor %})
    group by deterministic_label, source

),

conflicts as (

    select distinct scored.node_a, scored.node_b, x.source
    from scored
    inner join exclusive_ids as x on x.deterministic_label = scored.label_a
    inner join exclusive_ids as y
        on y.deterministic_label = scored.label_b
        and y.source = x.source
        and (y.some_id <> x.some_id or x.ids > 1 or y.ids > 1)
    where scored.score >= {{ var('identity_match_threshold') }}

),

fuzzy_edges as (

    select
        scored.node_a,
        scored.node_b,
        'fuzzy' as rule,
        cast(scored.score as numeric(6, 2)) as score,
        scored.score >= {{ var('identity_match_threshold') }} and conflicts.source is null as is_accepted,
        case
            when scored.score < {{ var('identity_match_threshold') }} then 'below_threshold'
            when conflicts.source is not null then 'different_' || conflicts.source || '_ids'
        end as rejection_reason
    from scored
    left join conflicts
        on conflicts.node_a = scored.node_a and conflicts.node_b = scored.node_b

),

final as (

    select
        node_a,
        node_b,
        rule,
        cast(null as numeric(6, 2)) as score,
        true as is_accepted,
        cast(null as varchar) as rejection_reason
    from deterministic_edges

    union all

    select node_a, node_b, rule, score, is_accepted, rejection_reason from fuzzy_edges

)

select * from final
