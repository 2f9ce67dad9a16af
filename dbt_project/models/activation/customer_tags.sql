{{ config(materialized='table') }}

-- Hierarchical tags per customer from their segments' segment_tags: one row per customer
-- and tag path, with the segments that gave it (comma-separated, sorted).
with

members as (

    select * from {{ ref('int_segment_members_unioned') }}

),

paths as (

    select * from {{ ref('segment_tag_paths') }}

),

final as (

    select
        members.customer_id,
        paths.tag_path,
        paths.main_tag,
        paths.tag,
        paths.parent_tag,
        {{ ordered_string_agg('members.segment', ',') }} as segments
    from members
    inner join paths on paths.segment = members.segment
    group by members.customer_id, paths.tag_path, paths.main_tag, paths.tag, paths.parent_tag

)

select * from final
