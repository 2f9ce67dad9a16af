{{ config(materialized='table') }}

-- Every segment's members for this run, one row per customer and segment.
with

members as (

    {% for name in segment_models() %}
    select distinct customer_id, {{ sql_text(name) }} as segment
    from {{ ref(name) }}
    {% if not loop.last %}union all{% endif %}
    {% else %}
    select cast(null as varchar) as customer_id, cast(null as varchar) as segment
    where 1 = 0
    {% endfor %}

),

final as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(segment as varchar) as segment
    from members

)

select * from final
