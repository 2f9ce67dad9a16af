{#- Incremental pair comparison, for int_identity_pairs_compared (the blocked candidate
    pairs; a model over another set of pairs would use the same macros).

    A pair's levels depend on its two records alone, so each stored pair keeps a fingerprint
    of both records' compared attributes (and of the comparison definitions, so that editing
    them compares every pair again). A run enumerates today's pairs, which is cheap, and
    compares only the pairs that are new or one of whose records changed. A stored pair that
    is no longer enumerated becomes a removal row (is_removed), which the model's post-hook
    deletes. The result equals comparing every pair again. -#}

{#- The config of a model built with identity_compared_pairs. -#}
{#- With block_state, the model keeps its blocking between builds (macros/identity_blocks.sql). -#}
{% macro identity_pairs_config(block_state=false) -%}
  {%- set hooks = ["delete from {{ this }} where is_removed"] -%}
  {%- if block_state -%}
    {%- do hooks.append("{{ identity_block_state_update(identity_block_state_ready()) }}") -%}
  {%- endif -%}
  {{ config(
      materialized='incremental',
      unique_key=['node_a', 'node_b'],
      incremental_strategy='delete+insert',
      on_schema_change='fail',
      post_hook=hooks,
  ) }}
{%- endmacro %}

{#- The fingerprint of a record of int_identity_records_unioned: what a comparison reads. -#}
{% macro identity_record_fingerprint() -%}
md5(concat_ws(
            '|',
            '{{ identity_definitions_digest() }}',
            {%- for column in ['first_name_key', 'last_name_key', 'cast(birth_date as varchar)', 'postcode_key', 'city_key', 'phone_key', 'email_normalized', 'employer_domain_key'] %}
            coalesce({{ column }}, chr(1)){% if not loop.last %},{% endif %}
            {%- endfor %}
        ))
{%- endmacro %}

{#- CTEs `to_compare`, `removed`, `compared` and `final` over the CTE `records` (with a
    `fingerprint` column) and the CTE `pairs` (node_a < node_b). With `pairs` none, the
    model has defined `to_compare` and `removed` itself (incremental blocking,
    macros/identity_blocks.sql). -#}
{% macro identity_compared_pairs(records, pairs) -%}
{% if pairs is none %}
{#- to_compare and removed come from the model -#}
{%- elif is_incremental() %}
previous as (

    select node_a, node_b, fingerprint_a, fingerprint_b from {{ this }}

),

-- Today's pairs against the stored ones in one full join (two joins, one per direction,
-- took twice as long): a pair on the left only is new, on the right only is gone.
matched as materialized (

    select
        coalesce({{ pairs }}.node_a, previous.node_a) as node_a,
        coalesce({{ pairs }}.node_b, previous.node_b) as node_b,
        {{ pairs }}.node_a is null as is_gone,
        previous.node_a is null as is_new,
        previous.fingerprint_a,
        previous.fingerprint_b
    from {{ pairs }}
    full outer join previous
        on previous.node_a = {{ pairs }}.node_a and previous.node_b = {{ pairs }}.node_b

),

-- New pairs, and kept pairs one of whose records changed since it was compared.
to_compare as (

    select matched.node_a, matched.node_b
    from matched
    inner join {{ records }} as a on a.record_key = matched.node_a
    inner join {{ records }} as b on b.record_key = matched.node_b
    where not matched.is_gone
        and (
            matched.is_new
            or matched.fingerprint_a <> a.fingerprint
            or matched.fingerprint_b <> b.fingerprint
        )

),

removed as (

    select node_a, node_b from matched where is_gone

),
{% else %}
to_compare as (

    select node_a, node_b from {{ pairs }}

),
{% endif %}

compared as (

    select
        to_compare.node_a,
        to_compare.node_b,
        a.fingerprint as fingerprint_a,
        b.fingerprint as fingerprint_b,
        false as is_removed,
        cast(current_timestamp as timestamp) as _compared_at,
        {%- for c in identity_comparisons() if c.tf %}
        cast(a.{{ c.tf }} as varchar) as {{ c.name }}_value,
        {%- endfor %}
        {{ identity_comparison_levels() }}
    from to_compare
    inner join {{ records }} as a on a.record_key = to_compare.node_a
    inner join {{ records }} as b on b.record_key = to_compare.node_b

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
{%- endmacro %}
