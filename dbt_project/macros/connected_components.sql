{#- Connected components by min-label propagation, unrolled into CTEs (portable SQL, no
    recursion). `nodes` has a `node` column, `edges` has `node_a` and `node_b`. Each round
    moves labels one hop; the edge lists are stars around each key's smallest record, so
    real clusters converge in a few rounds. The test assert_identity_components_converged
    fails the build if `rounds` was not enough.

    Only the nodes whose label fell in a round are kept from that round on
    (`<prefix>_fell_<i>`), and only they push their label in the next: a node that kept its
    label pushed it when it got it. A node's label is the smallest it was offered, or its
    own key. So a round after the first two joins the edges with a handful of nodes, and
    the full node list is read twice (at the start and in `<prefix>_<rounds>`), not once a
    round. Emits CTEs ending in `<prefix>_<rounds>`, which holds (node, label). -#}
{% macro connected_components(prefix, nodes, edges, rounds=10) -%}
{{ prefix }}_fell_0 as materialized (

    select node, node as label from {{ nodes }}

),
{%- for i in range(rounds) %}

{{ prefix }}_pushed_{{ i }} as (

    select node, min(label) as label
    from (
        select e.node_a as node, f.label
        from {{ edges }} as e
        inner join {{ prefix }}_fell_{{ i }} as f on f.node = e.node_b
        union all
        select e.node_b as node, f.label
        from {{ edges }} as e
        inner join {{ prefix }}_fell_{{ i }} as f on f.node = e.node_a
    ) as pushed
    group by node

),

-- The nodes offered a label below their own key and below every label they took before.
{{ prefix }}_fell_{{ i + 1 }} as materialized (

    select p.node, p.label
    from {{ prefix }}_pushed_{{ i }} as p
    where p.label < p.node
    {%- for k in range(1, i + 1) %}
        and not exists (
            select 1 from {{ prefix }}_fell_{{ k }} as f
            where f.node = p.node and f.label <= p.label
        )
    {%- endfor %}

),
{%- endfor %}

{{ prefix }}_fallen as (

    select node, min(label) as label
    from (
        {%- for k in range(1, rounds + 1) %}
        select node, label from {{ prefix }}_fell_{{ k }}
        {% if not loop.last %}union all{% endif %}
        {%- endfor %}
    ) as fell
    group by node

),

{{ prefix }}_{{ rounds }} as (

    select n.node, coalesce(f.label, n.node) as label
    from {{ nodes }} as n
    left join {{ prefix }}_fallen as f on f.node = n.node

)
{%- endmacro %}

{#- Similarity of two strings in [0, 1] from the Levenshtein distance (DuckDB and
    PostgreSQL's fuzzystrmatch share the function). -#}
{% macro name_similarity(a, b) -%}
  (1.0 - cast(levenshtein({{ a }}, {{ b }}) as double precision)
         / greatest(length({{ a }}), length({{ b }}), 1))
{%- endmacro %}

{#- Lower case without spaces, dots, apostrophes and hyphens: for comparing names
    (non-Latin letters are kept, the same way on both engines). -#}
{% macro clean_name(column) -%}
  nullif(lower(regexp_replace(trim({{ column }}), '[ .''`-]', '', 'g')), '')
{%- endmacro %}
