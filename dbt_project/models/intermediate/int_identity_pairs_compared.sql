-- Candidate record pairs for the fuzzy tier, and the level of every comparison for each.
--
-- Blocking keeps the cost near-linear: two records are compared only when they share a
-- blocking key (full name; last name or first name with birth date, postcode or city;
-- birth date with postcode area or a name's initial; name prefixes with birth year; phone;
-- email local part; employer domain with last-name prefix). A key shared by more than
-- var identity_block_size_cap records is skipped.
-- The comparison levels are defined once, in macros/identity_matching.sql.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

deterministic as (

    select * from {{ ref('int_identity_clusters_deterministic') }}

),

fuzzy_records as (

    select *
    from records
    where source in ('crm', 'billing')
        and (first_name_key is not null or last_name_key is not null)

),

blocked as (

    select record_key, 'name:' || first_name_key || ':' || last_name_key as block_key
    from fuzzy_records
    where first_name_key is not null and last_name_key is not null

    union all

    select record_key, 'last_dob:' || last_name_key || ':' || cast(birth_date as varchar)
    from fuzzy_records
    where last_name_key is not null and birth_date is not null

    union all

    select record_key, 'first_dob:' || first_name_key || ':' || cast(birth_date as varchar)
    from fuzzy_records
    where first_name_key is not null and birth_date is not null

    union all

    select record_key, 'last_postcode:' || last_name_key || ':' || postcode_key
    from fuzzy_records
    where last_name_key is not null and postcode_key is not null

    union all

    select record_key, 'first_postcode:' || first_name_key || ':' || postcode_key
    from fuzzy_records
    where first_name_key is not null and postcode_key is not null

    union all

    select record_key, 'last_city:' || last_name_key || ':' || city_key
    from fuzzy_records
    where last_name_key is not null and city_key is not null

    union all

    select record_key, 'first_city:' || first_name_key || ':' || city_key
    from fuzzy_records
    where first_name_key is not null and city_key is not null

    union all

    select record_key, 'dob_area:' || cast(birth_date as varchar) || ':' || left(postcode_key, 3)
    from fuzzy_records
    where birth_date is not null and postcode_key is not null

    union all

    select record_key, 'dob_first_initial:' || cast(birth_date as varchar) || ':' || substr(first_name_key, 1, 1)
    from fuzzy_records
    where birth_date is not null and first_name_key is not null

    union all

    select record_key, 'dob_last_initial:' || cast(birth_date as varchar) || ':' || substr(last_name_key, 1, 1)
    from fuzzy_records
    where birth_date is not null and last_name_key is not null

    union all

    select
        record_key,
        'name_prefixes_year:' || substr(first_name_key, 1, 2) || ':' || substr(last_name_key, 1, 2)
            || ':' || cast(extract(year from birth_date) as varchar)
    from fuzzy_records
    where first_name_key is not null and last_name_key is not null and birth_date is not null

    union all

    select record_key, 'phone:' || phone_key
    from fuzzy_records
    where phone_key is not null

    union all

    select record_key, 'email_local:' || split_part(email_normalized, '@', 1)
    from fuzzy_records
    where email_normalized is not null

    union all

    select record_key, 'employer:' || employer_domain_key || ':' || substr(last_name_key, 1, 3)
    from fuzzy_records
    where employer_domain_key is not null and last_name_key is not null

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

final as (

    select
        pairs.node_a,
        pairs.node_b,
        pairs.label_a,
        pairs.label_b,
        pairs.is_same_cluster,
        a.first_name_key as first_name_value,
        a.last_name_key as last_name_value,
        cast(a.birth_date as varchar) as birth_date_value,
        a.postcode_key as postcode_value,
        a.city_key as city_value,
        {{ identity_comparison_levels() }}
    from labelled_pairs as pairs
    inner join records as a on a.record_key = pairs.node_a
    inner join records as b on b.record_key = pairs.node_b

)

select * from final
