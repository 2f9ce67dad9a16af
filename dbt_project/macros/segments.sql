{#- Segments: every model in models/segments/ is one segment. profilecast passes the folder's
    current list as var segment_models (the default below in dbt_project.yml serves ad-hoc
    `dbt build`s; tests/assert_segment_models_listed.sql fails when it is out of date). -#}

{% macro segment_models() -%}
    {{ return(var('segment_models', []) | sort) }}
{%- endmacro %}

{#- A segment's metadata from its config(meta={...}), with defaults. Empty at parse time. -#}
{% macro segment_meta(name) -%}
    {%- set meta = {} -%}
    {%- if execute -%}
        {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ name) -%}
        {%- if node is none -%}
            {{ exceptions.raise_compiler_error("segment_models lists '" ~ name ~ "' but models/segments/ has no such model") }}
        {%- endif -%}
        {%- set meta = node.config.meta or {} -%}
    {%- endif -%}
    {%- set kind = (meta.get('kind', 'marketing') | string | lower) -%}
    {%- if kind not in ('marketing', 'transactional') -%}
        {{ exceptions.raise_compiler_error("segment " ~ name ~ ": kind must be marketing or transactional, not '" ~ kind ~ "'") }}
    {%- endif -%}
    {{ return({
        'description': meta.get('description', '') | string,
        'owner': meta.get('owner', 'unassigned') | string,
        'priority': meta.get('priority', 50) | int,
        'kind': kind,
        'segment_tags': meta.get('segment_tags', []) or [],
        'min_change_pct': meta.get('min_change_pct', -50.0) | float,
        'max_change_pct': meta.get('max_change_pct', 100.0) | float,
        'band_min_rows': meta.get('band_min_rows', 50) | int,
    }) }}
{%- endmacro %}

{#- A SQL string literal. -#}
{% macro sql_text(value) -%}
    {%- if value is none -%}cast(null as varchar){%- else -%}'{{ value | string | replace("'", "''") }}'{%- endif -%}
{%- endmacro %}

{#- "Main > Sub > Leaf" -> one row per depth: (tag_path, main_tag, tag, parent_tag). A sub
    tag always brings its parents along. -#}
{% macro tag_paths(tag) -%}
    {%- set parts = [] -%}
    {%- for p in tag.split('>') -%}{%- if p.strip() -%}{%- do parts.append(p.strip()) -%}{%- endif -%}{%- endfor -%}
    {%- set rows = [] -%}
    {%- for depth in range(1, parts | length + 1) -%}
        {%- do rows.append({
            'tag_path': parts[:depth] | join(' > '),
            'main_tag': parts[0],
            'tag': parts[depth - 1],
            'parent_tag': parts[depth - 2] if depth > 1 else none,
        }) -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}

{#- The body of an inactivity segment: customers with no open, click or visit in the last
    `days` days (relative to var as_of). -#}
{% macro inactive_customers(days) -%}
with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where {{ last_activity_at() }} < {{ days_before(as_of(), days) }}

)

select * from final
{%- endmacro %}
