{%- set in_folder = [] -%}
{%- if execute -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.original_file_path.startswith('models/segments/') -%}
            {%- do in_folder.append(node.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif -%}
{%- set listed = segment_models() %}
-- Fails when a model in models/segments/ is missing from var segment_models (or the var
-- names a model that is gone). profilecast passes the folder's list on every build; this
-- catches an ad-hoc `dbt build` run with an out-of-date default in dbt_project.yml.
with

problems as (

    select cast(null as varchar) as segment, cast(null as varchar) as problem
    where 1 = 0
    {%- for name in in_folder | sort %}{% if name not in listed %}
    union all
    select '{{ name }}', 'in models/segments/ but not in var segment_models'
    {%- endif %}{% endfor %}
    {%- for name in listed %}{% if execute and name not in in_folder %}
    union all
    select '{{ name }}', 'in var segment_models but not in models/segments/'
    {%- endif %}{% endfor %}

)

select * from problems
