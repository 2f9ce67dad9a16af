{#- Incremental blocking, for int_identity_pairs_compared.

    Enumerating every candidate pair each day costs the whole population. Blocks only change
    where a record changed, so the model keeps the blocking of the last build in two state
    tables beside it, written by its post-hooks in the same transaction as the pairs (so
    they never disagree with the table; dbt drops nothing else):

      <model>__block_records  record_key, fingerprint (what a comparison reads, with the
                              definitions), block_size_cap
      <model>__block_members  record_key, block_key: one row per record and block

    A build then works on the changed records only (new, gone, or another fingerprint):

      * touched blocks: every block a changed record is in, before or after;
      * added: the pairs of the touched blocks usable now (2 to the cap members);
      * recheck: the pairs of the touched blocks usable before. Such a pair that is not
        added stays only if its two records still share an untouched usable block (an
        untouched block has the same members as before, and a changed record's blocks are
        all touched); otherwise it is removed.
      * compared: the added pairs with a changed record, and the added pairs of two
        unchanged records that were not stored: not rechecked (no touched block held them
        before) and sharing no untouched usable block. The stored pairs are not read.

    Every other stored pair shares an untouched usable block, so it stays. A pair not stored
    that is not added shares no usable block now, or only untouched ones that were usable
    before too, so it was stored. The result equals enumerating every pair again. A build
    without usable state (the first, a full refresh, another cap, an empty or missing table)
    enumerates every pair and writes the state whole. -#}

{#- The relation of a state table, kind 'records' or 'members'; with existing=true, none
    when the table is not there. -#}
{% macro identity_block_state(kind, existing=false) -%}
  {{ return(model_state_table('__block_' ~ kind, existing)) }}
{%- endmacro %}

{#- Whether this build can work from the state: incremental, and the state holds rows
    written with today's cap. Checked when the model runs. -#}
{% macro identity_block_state_ready() -%}
  {%- if not execute or this is string or not is_incremental() -%}{{ return(false) }}{%- endif -%}
  {%- set records = identity_block_state('records', existing=true) -%}
  {%- set members = identity_block_state('members', existing=true) -%}
  {%- if records is none or members is none -%}{{ return(false) }}{%- endif -%}
  {%- set found = run_query('select count(*), min(block_size_cap), max(block_size_cap) from ' ~ records) -%}
  {%- set row = found.rows[0] -%}
  {{ return(row[0] > 0 and row[1] == var('identity_block_size_cap') and row[2] == var('identity_block_size_cap')) }}
{%- endmacro %}

{#- The fuzzy tier's records with their fingerprint. -#}
{% macro identity_fuzzy_records() -%}
    select
        *,
        {{ identity_record_fingerprint() }} as fingerprint
    from {{ ref('int_identity_records_unioned') }}
    where is_fuzzy_candidate
{%- endmacro %}

{#- (record_key, block_key) of every block key of the records of `records`. -#}
{% macro identity_blocked(records) -%}
  {%- for key in identity_blocking_keys() %}
    select
        record_key,
        '{{ key.name }}:' || {{ key.parts | join(" || ':' || ") }} as block_key
    from {{ records }}
    where {{ key.requires | join(' is not null and ') }} is not null
    {% if not loop.last %}
    union all
    {%- endif %}
  {%- endfor %}
{%- endmacro %}

{#- Post-hook: bring the state to this build's blocking, in the model's transaction. -#}
{% macro identity_block_state_update(was_ready) -%}
  {%- if not execute or this is string -%}{{ return('select 1') }}{%- endif -%}
  {%- set records = identity_block_state('records') -%}
  {%- set members = identity_block_state('members') -%}
  {%- set cap = var('identity_block_size_cap') -%}
  {%- set fuzzy = '(' ~ identity_fuzzy_records() ~ ')' -%}
  {%- if was_ready %}
    {%- do run_query('drop table if exists profilecast_block_changes') -%}
    {%- do run_query('create temporary table profilecast_block_changes as ' ~ identity_block_changes(records, fuzzy)) -%}
    {%- do run_query('delete from ' ~ members ~ ' where record_key in (select record_key from profilecast_block_changes)') -%}
    {%- do run_query('delete from ' ~ records ~ ' where record_key in (select record_key from profilecast_block_changes)') -%}
    {%- set changed = '(select fuzzy.* from ' ~ fuzzy ~ ' as fuzzy inner join profilecast_block_changes as changes on changes.record_key = fuzzy.record_key) as changed_records' -%}
    {%- do run_query('insert into ' ~ members ~ ' (record_key, block_key) ' ~ identity_blocked(changed)) -%}
    {%- do run_query('insert into ' ~ records ~ ' (record_key, fingerprint, block_size_cap) select record_key, fingerprint, ' ~ cap ~ ' from ' ~ changed) -%}
    {%- do run_query('drop table profilecast_block_changes') -%}
  {%- else %}
    {%- do run_query('drop table if exists ' ~ records) -%}
    {%- do run_query('drop table if exists ' ~ members) -%}
    {%- do run_query('create table ' ~ records ~ ' as select record_key, fingerprint, ' ~ cap ~ ' as block_size_cap from ' ~ fuzzy ~ ' as fuzzy') -%}
    {%- do run_query('create table ' ~ members ~ ' as ' ~ identity_blocked(fuzzy ~ ' as fuzzy')) -%}
  {%- endif %}
  {{ return('select 1') }}
{%- endmacro %}

{#- The records whose blocking may have changed since the state: new, gone, or with
    another fingerprint. -#}
{% macro identity_block_changes(records, fuzzy) -%}
    select coalesce(fuzzy.record_key, stored.record_key) as record_key
    from {{ fuzzy }} as fuzzy
    full outer join {{ records }} as stored on stored.record_key = fuzzy.record_key
    where stored.record_key is null
        or fuzzy.record_key is null
        or stored.fingerprint <> fuzzy.fingerprint
{%- endmacro %}

{#- CTEs `changed` .. `pairs` for the model when the state is ready: `pairs` holds today's
    pairs to compare (added, new or with a changed record) and `removed` the stored pairs
    no longer blocked. Reads the CTE `fuzzy_records` and `{{ this }}`. -#}
{% macro identity_incremental_blocking() -%}
  {%- set cap = var('identity_block_size_cap') -%}
stored_members as (

    select record_key, block_key from {{ identity_block_state('members') }}

),

changed as materialized (

    {{ identity_block_changes(identity_block_state('records'), 'fuzzy_records') }}

),

changed_now as (

    select fuzzy_records.*
    from fuzzy_records
    inner join changed on changed.record_key = fuzzy_records.record_key

),

new_blocks_of_changed as materialized (
    {{ identity_blocked('changed_now') }}
),

touched as materialized (

    select stored_members.block_key
    from stored_members
    inner join changed on changed.record_key = stored_members.record_key
    union
    select block_key from new_blocks_of_changed

),

old_members as materialized (

    select stored_members.record_key, stored_members.block_key
    from stored_members
    inner join touched on touched.block_key = stored_members.block_key

),

new_members as materialized (

    select old_members.record_key, old_members.block_key
    from old_members
    left join changed on changed.record_key = old_members.record_key
    where changed.record_key is null
    union all
    select record_key, block_key from new_blocks_of_changed

),

old_usable as (

    select block_key
    from old_members
    group by block_key
    having count(*) between 2 and {{ cap }}

),

new_usable as (

    select block_key
    from new_members
    group by block_key
    having count(*) between 2 and {{ cap }}

),

added as materialized (

    select distinct a.record_key as node_a, b.record_key as node_b
    from new_members as a
    inner join new_usable on new_usable.block_key = a.block_key
    inner join new_members as b on b.block_key = a.block_key and a.record_key < b.record_key

),

recheck as (

    select distinct a.record_key as node_a, b.record_key as node_b
    from old_members as a
    inner join old_usable on old_usable.block_key = a.block_key
    inner join old_members as b on b.block_key = a.block_key and a.record_key < b.record_key

),

unresolved as materialized (

    select recheck.node_a, recheck.node_b
    from recheck
    left join added on added.node_a = recheck.node_a and added.node_b = recheck.node_b
    where added.node_a is null

),

-- Added pairs of two unchanged records that no touched block held before: stored only if
-- an untouched usable block holds them (such a block had the same members before).
fresh_unchanged as materialized (

    select added.node_a, added.node_b
    from added
    left join recheck on recheck.node_a = added.node_a and recheck.node_b = added.node_b
    left join changed as changed_a on changed_a.record_key = added.node_a
    left join changed as changed_b on changed_b.record_key = added.node_b
    where recheck.node_a is null
        and changed_a.record_key is null
        and changed_b.record_key is null

),

questioned as materialized (

    select node_a, node_b from unresolved
    union all
    select node_a, node_b from fresh_unchanged

),

-- The untouched blocks the questioned pairs' records are in.
unresolved_blocks as materialized (

    select stored_members.record_key, stored_members.block_key
    from stored_members
    left join touched on touched.block_key = stored_members.block_key
    where touched.block_key is null
        and stored_members.record_key in (
            select questioned.node_a from questioned
            union
            select questioned.node_b from questioned
        )

),

untouched_usable as (

    select stored_members.block_key
    from stored_members
    where stored_members.block_key in (select unresolved_blocks.block_key from unresolved_blocks)
    group by stored_members.block_key
    having count(*) between 2 and {{ cap }}

),

still_blocked as materialized (

    select distinct questioned.node_a, questioned.node_b
    from questioned
    inner join unresolved_blocks as ba on ba.record_key = questioned.node_a
    inner join unresolved_blocks as bb
        on bb.record_key = questioned.node_b and bb.block_key = ba.block_key
    inner join untouched_usable on untouched_usable.block_key = ba.block_key

),

removed as (

    select unresolved.node_a, unresolved.node_b
    from unresolved
    left join still_blocked
        on still_blocked.node_a = unresolved.node_a and still_blocked.node_b = unresolved.node_b
    where still_blocked.node_a is null

),

-- Added pairs that are new, or one of whose records changed, are compared. An added pair
-- of two unchanged records was stored when a touched block held it before (recheck) or an
-- untouched usable block holds it; so the stored pairs are not read. At a million contacts
-- the next day, joining the 2.8 million added pairs with the 26 million stored ones took
-- 3.4 s of scan and 2.9 s of join (operator time); the query went from 8.9 s to 6.9 s.
to_compare as (

    select added.node_a, added.node_b
    from added
    where added.node_a in (select changed.record_key from changed)
        or added.node_b in (select changed.record_key from changed)
    union all
    select fresh_unchanged.node_a, fresh_unchanged.node_b
    from fresh_unchanged
    left join still_blocked
        on still_blocked.node_a = fresh_unchanged.node_a
        and still_blocked.node_b = fresh_unchanged.node_b
    where still_blocked.node_a is null

),
{%- endmacro %}
