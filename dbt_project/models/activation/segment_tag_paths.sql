{{ config(materialized='table') }}

-- The tags each segment gives its members, one row per segment and tag path: the segment
-- tag "LoyalCustomer > HighSpender" yields the paths "LoyalCustomer" (a main tag) and
-- "LoyalCustomer > HighSpender" (its sub-tag).
with

paths as (

    {%- set rows = [] -%}
    {%- for name in segment_models() -%}
    {%- for tag in segment_meta(name).segment_tags -%}
            {%- for p in tag_paths(tag | string) -%}
                {%- set row = (name, p.tag_path, p.main_tag, p.tag, p.parent_tag) -%}
                {%- if row not in rows %}{% do rows.append(row) %}{% endif -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor %}
    {% for r in rows %}
    select
        {{ sql_text(r[0]) }} as segment,
        {{ sql_text(r[1]) }} as tag_path,
        {{ sql_text(r[2]) }} as main_tag,
        {{ sql_text(r[3]) }} as tag,
        {{ sql_text(r[4]) }} as parent_tag
    {% if not loop.last %}union all{% endif %}
    {% else %}
    select
        cast(null as varchar) as segment, cast(null as varchar) as tag_path,
        cast(null as varchar) as main_tag, cast(null as varchar) as tag,
        cast(null as varchar) as parent_tag
    where 1 = 0
    {% endfor %}

),

final as (

    select
        cast(segment as varchar) as segment,
        cast(tag_path as varchar) as tag_path,
        cast(main_tag as varchar) as main_tag,
        cast(tag as varchar) as tag,
        cast(parent_tag as varchar) as parent_tag
    from paths

)

select * from final
