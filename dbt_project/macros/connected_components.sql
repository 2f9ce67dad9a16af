{#- Connected components by min-label propagation, unrolled into CTEs (portable SQL, no
    recursion). `nodes` has a `node` column, `edges` has `node_a` and `node_b`. Each round
    moves labels one hop; the edge lists are stars around each key's smallest record, so
    real clusters converge in a few rounds. The test assert_identity_components_converged
    fails the build if `rounds` was not enough.

    Only the nodes whose label fell in the last round push it on (`changed`): a node that
    kept its label pushed it when it got it, so its neighbours hold that label or a smaller
    one already. After the first rounds few nodes change, so a round joins the edges with a
    handful of nodes instead of aggregating every node and both ends of every edge again.
    Emits CTEs `<prefix>_0` .. `<prefix>_<rounds>`; the last one holds (node, label). -#}
{% macro connected_components(prefix, nodes, edges, rounds=10) -%}
{{ prefix }}_0 as materialized (

    select node, node as label, true as changed from {{ nodes }}

),
{%- for i in range(rounds) %}

{{ prefix }}_pushed_{{ i }} as (

    select node, min(label) as label
    from (
        select e.node_a as node, l.label
        from {{ edges }} as e
        inner join {{ prefix }}_{{ i }} as l on l.node = e.node_b
        where l.changed
        union all
        select e.node_b as node, l.label
        from {{ edges }} as e
        inner join {{ prefix }}_{{ i }} as l on l.node = e.node_a
        where l.changed
    ) as pushed
    group by node

),

{{ prefix }}_{{ i + 1 }} as materialized (

    select
        l.node,
        case when p.label < l.label then p.label else l.label end as label,
        coalesce(p.label < l.label, false) as changed
    from {{ prefix }}_{{ i }} as l
    left join {{ prefix }}_pushed_{{ i }} as p on p.node = l.node

){% if not loop.last %},{% endif %}
{%- endfor %}
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
