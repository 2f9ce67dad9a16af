{{ config(materialized='table') }}

-- One row per segment model (models/segments/) with the metadata from its config(meta=...):
-- what it is for, who owns it, its priority and kind, and the size-change band the quality
-- gate allows. The catalog that segment_runs, customer_segments and the gate read.
with

defined as (

    {% for name in segment_models() %}
    {%- set m = segment_meta(name) %}
    select
        {{ sql_text(name) }} as segment,
        {{ sql_text(m.description) }} as description,
        {{ sql_text(m.owner) }} as owner,
        {{ m.priority }} as priority,
        {{ sql_text(m.kind) }} as kind,
        {{ sql_text(m.segment_tags | join('|')) }} as segment_tags,
        {{ m.min_change_pct }} as min_change_pct,
        {{ m.max_change_pct }} as max_change_pct,
        {{ m.band_min_rows }} as band_min_rows
    {% if not loop.last %}union all{% endif %}
    {% else %}
    select
        cast(null as varchar) as segment, cast(null as varchar) as description,
        cast(null as varchar) as owner, 0 as priority, cast(null as varchar) as kind,
        cast(null as varchar) as segment_tags, 0.0 as min_change_pct,
        0.0 as max_change_pct, 0 as band_min_rows
    where 1 = 0
    {% endfor %}

),

final as (

    select
        cast(segment as varchar) as segment,
        cast(description as varchar) as description,
        cast(owner as varchar) as owner,
        cast(priority as integer) as priority,
        cast(kind as varchar) as kind,
        cast(segment_tags as varchar) as segment_tags,
        cast(min_change_pct as double precision) as min_change_pct,
        cast(max_change_pct as double precision) as max_change_pct,
        cast(band_min_rows as integer) as band_min_rows
    from defined

)

select * from final
