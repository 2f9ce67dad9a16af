{{ identity_pairs_config(block_state=true) }}

-- Candidate record pairs for the fuzzy tier, and the level of every comparison for each.
--
-- Blocking keeps the cost near-linear: two records are compared only when they share a
-- blocking key (full name; last name or first name with birth date, postcode or city;
-- birth date with postcode area or a name's initial; name prefixes with birth year; phone;
-- email local part; employer domain with last-name prefix). A key shared by more than
-- var identity_block_size_cap records is skipped. The keys and the comparison levels are
-- declared once, in macros/identity_matching.sql.
--
-- Incremental, and exact: a run blocks again only around the records that changed, from
-- the blocking the last build kept beside the table (macros/identity_blocks.sql), and
-- compares only the pairs that are new or whose record changed
-- (macros/identity_incremental.sql); a pair no longer blocked together (a record changed,
-- left the fuzzy population, was erased, or its block outgrew the cap) is removed. The
-- first build, a full refresh or another cap enumerates every pair. The deterministic
-- labels change daily and are joined in int_identity_edges_scored, not kept here.
-- _compared_at: when the pair was compared.
with

fuzzy_records as (

    {{ identity_fuzzy_records() }}

),
{%- if identity_block_state_ready() %}

{{ identity_incremental_blocking() }}

{{ identity_compared_pairs('fuzzy_records', none) }}
{%- else %}

blocked as (
    {{ identity_blocked('fuzzy_records') }}
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
{%- endif %}

select * from final
