{{ identity_pairs_config() }}

-- Candidate record pairs for the fuzzy tier, and the level of every comparison for each.
--
-- Blocking keeps the cost near-linear: two records are compared only when they share a
-- blocking key (full name; last name or first name with birth date, postcode or city;
-- birth date with postcode area or a name's initial; name prefixes with birth year; phone;
-- email local part; employer domain with last-name prefix). A key shared by more than
-- var identity_block_size_cap records is skipped. The keys and the comparison levels are
-- declared once, in macros/identity_matching.sql.
--
-- Incremental, and exact (macros/identity_incremental.sql): a run enumerates today's
-- candidate pairs (blocking is cheap) and compares only the pairs that are new or whose
-- record changed; a pair no longer blocked together (a record changed, left the fuzzy
-- population, was erased, or its block outgrew the cap) is removed. The deterministic
-- labels change daily and are joined in int_identity_edges_scored, not kept here.
-- _compared_at: when the pair was compared.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

fuzzy_records as (

    select
        *,
        {{ identity_record_fingerprint() }} as fingerprint
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

{{ identity_compared_pairs('fuzzy_records', 'pairs') }}

select * from final
