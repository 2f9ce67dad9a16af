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
      * added: the pairs of a changed record with the other members of its blocks usable
        now (2 to the cap members); recheck: the same over its blocks usable before;
      * two unchanged records share the same touched blocks before and after, so their
        pair can only come or go with a touched block that crossed the cap (or 2). For the
        unchanged pairs of such blocks, the build asks whether any touched block they
        share was usable and whether any is usable now;
      * unresolved: the recheck pairs not added, and the unchanged pairs that a touched
        block held and none holds now. Such a pair stays only if its two records still
        share an untouched usable block (an untouched block has the same members as
        before); otherwise it is removed;
      * compared: the added pairs, and the unchanged pairs that a touched block holds now
        and none held before, unless an untouched usable block holds them (then they were
        stored). The stored pairs are not read.

    Every other stored pair still shares a usable block, so it stays. The result equals
    enumerating every pair again (tests/test_identity_blocks.py). Only the pairs of a
    changed record are enumerated, not every pair of the touched blocks: at a million
    contacts the next day, 320,153 and 114,097 pairs instead of 2,761,120 and 2,555,064,
    and the model's query alone took 4.05 s instead of 4.7 to 5.2 s. A build
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

{#- The pairs (node_a < node_b) of each changed record (the CTE `changed`) with the other
    members of its blocks in `members` (record_key, block_key). -#}
{% macro identity_pairs_of_changed(members) -%}
    select distinct
        least(changed_blocks.record_key, members.record_key) as node_a,
        greatest(changed_blocks.record_key, members.record_key) as node_b
    from {{ members }} as changed_blocks
    inner join changed on changed.record_key = changed_blocks.record_key
    inner join {{ members }} as members
        on members.block_key = changed_blocks.block_key
        and members.record_key <> changed_blocks.record_key
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

-- The changed records' blocks before (their stored memberships).
old_blocks_of_changed as materialized (

    select stored_members.record_key, stored_members.block_key
    from stored_members
    inner join changed on changed.record_key = stored_members.record_key

),

touched as materialized (

    select block_key from old_blocks_of_changed
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

old_sizes as (

    select block_key, count(*) as members
    from old_members
    group by block_key

),

new_sizes as (

    select block_key, count(*) as members
    from new_members
    group by block_key

),

-- Whether each touched block was usable (2 to the cap members) and is usable now.
usability as materialized (

    select
        touched.block_key,
        coalesce(old_sizes.members, 0) between 2 and {{ cap }} as was_usable,
        coalesce(new_sizes.members, 0) between 2 and {{ cap }} as is_usable
    from touched
    left join old_sizes on old_sizes.block_key = touched.block_key
    left join new_sizes on new_sizes.block_key = touched.block_key

),

-- The members of the touched blocks usable now, and of those usable before: at most the cap
-- per block. Joining the changed records to these, not to every member of their blocks,
-- keeps the oversized blocks (thousands of members) out of the join.
usable_new_members as materialized (

    select new_members.record_key, new_members.block_key
    from new_members
    inner join usability on usability.block_key = new_members.block_key
    where usability.is_usable

),

usable_old_members as materialized (

    select old_members.record_key, old_members.block_key
    from old_members
    inner join usability on usability.block_key = old_members.block_key
    where usability.was_usable

),

-- Today's pairs with a changed record: a changed record and each other member of its
-- blocks usable now.
added as materialized (

    {{ identity_pairs_of_changed('usable_new_members') }}

),

-- The stored pairs with a changed record: the same over the blocks as they were.
recheck as (

    {{ identity_pairs_of_changed('usable_old_members') }}

),

-- Two unchanged records share the same touched blocks before and after, so their pair
-- can only come or go with a block that crossed the cap (or 2). The unchanged members of
-- such a block are at most the cap (it is usable on one side).
flipped_members as materialized (

    select new_members.record_key, new_members.block_key
    from new_members
    inner join usability on usability.block_key = new_members.block_key
    left join changed on changed.record_key = new_members.record_key
    where usability.was_usable <> usability.is_usable
        and changed.record_key is null

),

flipped_pairs as materialized (

    select distinct a.record_key as node_a, b.record_key as node_b
    from flipped_members as a
    inner join flipped_members as b on b.block_key = a.block_key and a.record_key < b.record_key

),

-- For those pairs: whether a touched block they share was usable, and is usable now.
flipped_pairs_usable as materialized (

    select
        flipped_pairs.node_a,
        flipped_pairs.node_b,
        max(case when usability.was_usable then 1 else 0 end) as was_blocked,
        max(case when usability.is_usable then 1 else 0 end) as is_blocked
    from flipped_pairs
    inner join new_members as blocks_a on blocks_a.record_key = flipped_pairs.node_a
    inner join new_members as blocks_b
        on blocks_b.record_key = flipped_pairs.node_b and blocks_b.block_key = blocks_a.block_key
    inner join usability on usability.block_key = blocks_a.block_key
    group by flipped_pairs.node_a, flipped_pairs.node_b

),

-- Pairs a touched block held and no touched block holds now: the stored pairs with a
-- changed record that are not added, and the unchanged pairs whose blocks all left use.
unresolved as materialized (

    select recheck.node_a, recheck.node_b
    from recheck
    left join added on added.node_a = recheck.node_a and added.node_b = recheck.node_b
    where added.node_a is null
    union all
    select node_a, node_b
    from flipped_pairs_usable
    where was_blocked = 1 and is_blocked = 0

),

-- Unchanged pairs that a touched block holds now and none held before: stored only if
-- an untouched usable block holds them (such a block had the same members before).
fresh_unchanged as materialized (

    select node_a, node_b
    from flipped_pairs_usable
    where was_blocked = 0 and is_blocked = 1

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

-- The pairs with a changed record are compared, and the unchanged pairs new to the table.
-- The stored pairs are not read.
to_compare as (

    select added.node_a, added.node_b
    from added
    union all
    select fresh_unchanged.node_a, fresh_unchanged.node_b
    from fresh_unchanged
    left join still_blocked
        on still_blocked.node_a = fresh_unchanged.node_a
        and still_blocked.node_b = fresh_unchanged.node_b
    where still_blocked.node_a is null

),
{%- endmacro %}
