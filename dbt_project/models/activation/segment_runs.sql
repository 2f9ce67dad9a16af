{{ config(
    materialized='incremental',
    unique_key=['run_date', 'segment'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    full_refresh=false,
) }}

-- Size of every segment per run date and its change against the segment's previous run,
-- with the band the quality gate allows. A segment whose model was removed stays listed
-- as retired (size 0). A rerun of a run date replaces that date's rows.
with

members as (

    select * from {{ ref('int_segment_members_unioned') }}

),

definitions as (

    select * from {{ ref('segment_definitions') }}

),

sizes as (

    select segment, count(*) as size
    from members
    group by segment

),

{% if is_incremental() %}

earlier as (

    select * from {{ this }} where run_date < {{ run_date() }}

),

latest_runs as (

    select segment, max(run_date) as run_date
    from earlier
    group by segment

),

previous as (

    select earlier.segment, earlier.size
    from earlier
    inner join latest_runs
        on latest_runs.segment = earlier.segment
        and latest_runs.run_date = earlier.run_date

),

{% else %}

previous as (

    select cast(null as varchar) as segment, cast(null as bigint) as size
    where 1 = 0

),

{% endif %}

segments as (

    select segment from definitions
    union
    select segment from previous

),

final as (

    select
        {{ run_date() }} as run_date,
        segments.segment,
        cast(coalesce(sizes.size, 0) as bigint) as size,
        cast(previous.size as bigint) as previous_size,
        cast(
            case
                when previous.size > 0
                    then round(cast((coalesce(sizes.size, 0) - previous.size) * 100.0 / previous.size as numeric), 2)
            end as double precision
        ) as change_pct,
        definitions.segment is null as is_retired,
        definitions.kind,
        definitions.owner,
        definitions.description,
        definitions.min_change_pct,
        definitions.max_change_pct,
        definitions.band_min_rows
    from segments
    left join sizes on sizes.segment = segments.segment
    left join previous on previous.segment = segments.segment
    left join definitions on definitions.segment = segments.segment

)

select * from final
