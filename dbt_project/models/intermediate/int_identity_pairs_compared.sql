{{ config(
    materialized='incremental',
    unique_key=['node_a', 'node_b'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook="delete from {{ this }} where is_removed",
) }}

-- Candidate record pairs for the fuzzy tier, and the level of every comparison for each.
--
-- Blocking keeps the cost near-linear: two records are compared only when they share a
-- blocking key (full name; last name or first name with birth date, postcode or city;
-- birth date with postcode area or a name's initial; name prefixes with birth year; phone;
-- email local part; employer domain with last-name prefix). A key shared by more than
-- var identity_block_size_cap records is skipped. The keys and the comparison levels are
-- declared once, in macros/identity_matching.sql.
--
-- Incremental, and exact: a pair's levels depend on its two records alone, so each row
-- keeps a fingerprint of the attributes its records were compared on (and of the
-- comparison definitions: editing them compares every pair again). A run enumerates
-- today's candidate pairs (blocking is cheap) and compares only the pairs that are new or
-- whose record changed; a pair no longer blocked together (a record changed, left the
-- fuzzy population, was erased, or its block outgrew the cap) is written as a removal and
-- deleted by the post-hook. The deterministic labels change daily and are joined in
-- int_identity_edges_scored, not kept here. _compared_at: the run that compared the pair.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

fuzzy_records as (

    select
        *,
        md5(concat_ws(
            '|',
            '{{ identity_definitions_digest() }}',
            {%- for column in ['first_name_key', 'last_name_key', 'cast(birth_date as varchar)', 'postcode_key', 'city_key', 'phone_key', 'email_normalized', 'employer_domain_key'] %}
            coalesce({{ column }}, chr(1)){% if not loop.last %},{% endif %}
            {%- endfor %}
        )) as fingerprint
    from records
    where is_fuzzy_candidate

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

{% if is_incremental() %}
previous as (

    select node_a, node_b, fingerprint_a, fingerprint_b from {{ this }}

),

-- New pairs, and kept pairs one of whose records changed since it was compared.
to_compare as (

    select pairs.node_a, pairs.node_b
    from pairs
    inner join fuzzy_records as a on a.record_key = pairs.node_a
    inner join fuzzy_records as b on b.record_key = pairs.node_b
    left join previous
        on previous.node_a = pairs.node_a and previous.node_b = pairs.node_b
    where previous.node_a is null
        or previous.fingerprint_a <> a.fingerprint
        or previous.fingerprint_b <> b.fingerprint

),

removed as (

    select previous.node_a, previous.node_b
    from previous
    left join pairs
        on pairs.node_a = previous.node_a and pairs.node_b = previous.node_b
    where pairs.node_a is null

),
{% else %}
to_compare as (

    select node_a, node_b from pairs

),
{% endif %}

compared as (

    select
        pairs.node_a,
        pairs.node_b,
        a.fingerprint as fingerprint_a,
        b.fingerprint as fingerprint_b,
        false as is_removed,
        cast(current_timestamp as timestamp) as _compared_at,
        {%- for c in identity_comparisons() if c.tf %}
        cast(a.{{ c.tf }} as varchar) as {{ c.name }}_value,
        {%- endfor %}
        {{ identity_comparison_levels() }}
    from to_compare as pairs
    inner join fuzzy_records as a on a.record_key = pairs.node_a
    inner join fuzzy_records as b on b.record_key = pairs.node_b

),

final as (

    select * from compared
    {%- if is_incremental() %}

    union all

    select
        node_a,
        node_b,
        cast(null as varchar) as fingerprint_a,
        cast(null as varchar) as fingerprint_b,
        true as is_removed,
        cast(null as timestamp) as _compared_at,
        {%- for c in identity_comparisons() if c.tf %}
        cast(null as varchar) as {{ c.name }}_value,
        {%- endfor %}
        {%- for c in identity_comparisons() %}
        cast(null as integer) as g_{{ c.name }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from removed
    {%- endif %}

)

select * from final
