-- Candidate record pairs for the fuzzy tier, and the level of every comparison for each.
--
-- Blocking keeps the cost near-linear: two records are compared only when they share a
-- blocking key (full name; last name or first name with birth date, postcode or city;
-- birth date with postcode area or a name's initial; name prefixes with birth year; phone;
-- email local part; employer domain with last-name prefix). A key shared by more than
-- var identity_block_size_cap records is skipped. The keys and the comparison levels are
-- declared once, in macros/identity_matching.sql.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

deterministic as (

    select * from {{ ref('int_identity_clusters_deterministic') }}

),

fuzzy_records as (

    select * from records where is_fuzzy_candidate

),

blocked as (
    {%- for key in identity_blocking_keys() %}

    select
        record_key,
        '{{ key.name }}:' || {{ key.parts | join(" || ':' || ") }} as block_key
    from fuzzy_records
    where {{ key.requires | join(' is not null and ') }} is not null
    {% if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

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
        {%- for c in identity_comparisons() if c.tf %}
        cast(a.{{ c.tf }} as varchar) as {{ c.name }}_value,
        {%- endfor %}
        {{ identity_comparison_levels() }}
    from labelled_pairs as pairs
    inner join records as a on a.record_key = pairs.node_a
    inner join records as b on b.record_key = pairs.node_b

)

select * from final
