{#- Staging models keep one row per record: the latest version of it. Raw tables hold every
    version ever loaded; the newest by the source's own time (_record_ts, the record's
    watermark) wins, then the latest load. -#}

{#- In the renamed CTE: rank each record's versions, newest first. -#}
{% macro version_rank(key) -%}
    row_number() over (
        partition by {{ key }}
        order by _record_ts desc nulls last, _loaded_at desc
    ) as version_rank
{%- endmacro %}

{#- The final CTE's body: the newest version of each record. -#}
{% macro latest_version(relation='renamed') -%}
    select * from {{ relation }} where version_rank = 1
{%- endmacro %}

{#- Every address a record has had (all loaded versions): one row per record and address,
    with when the source first and last showed it. -#}
{% macro address_history(relation, key, key_alias) -%}
with

source as (

    select * from {{ relation }}

),

renamed as (

    select
        cast({{ key }} as varchar) as {{ key_alias }},
        nullif(trim(email), '') as email,
        cast(_record_ts as timestamp) as seen_at
    from source

),

final as (

    select
        {{ key_alias }},
        email,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at
    from renamed
    where {{ key_alias }} is not null and email is not null
    group by {{ key_alias }}, email

)

select * from final
{%- endmacro %}

{#- Incremental staging of a large source (events): the model is a table merged by key
    (delete+insert). In an incremental run only the records with a version ingested after
    the newest this model holds are staged again (the loader keeps _ingested_at increasing,
    sources.raw.next_ingestion_time), with all their versions ranked again, so a late or
    re-delivered version replaces the one staged before. A full refresh, or the first build,
    reads everything. A rerun re-ingests its batch and merges the same keys again.

    The CTEs `source` (the versions to rank) and, incremental, `previously_staged` (the
    staged rows of those records, first_ingested_prior), each with its comma. The newest
    loads' rows are found by the raw text of _ingested_at (ingested_after), and the older
    versions of a record only when it was staged before.
    Reading every raw row's key to find them, and casting every row's _ingested_at, took
    4.8 s (ESP) and 5.4 s (web) at a million contacts the next day; this takes 1.7 and
    1.6 s, with the same rows. -#}
{% macro changed_versions(relation, key, staged_key) -%}
  {%- if is_incremental() %}
new_versions as (

    select * from {{ relation }}
    where {{ ingested_after(staged_watermark()) }}

),

previously_staged as (

    {{ first_ingested_prior(staged_key, 'new_versions', key) }}

),

source as (

    select * from new_versions
    union all
    select * from {{ relation }}
    where not ({{ ingested_after(staged_watermark()) }})
        and cast({{ key }} as varchar) in (select previously_staged.staged_key from previously_staged)

),
  {%- else %}
source as (

    select * from {{ relation }}

),
  {%- endif %}
{%- endmacro %}

{#- The newest _ingested_at this incremental model holds (1900 when empty): a scalar subquery. -#}
{% macro staged_watermark() -%}
(select coalesce(max(_ingested_at), cast('1900-01-01' as timestamp)) from {{ this }})
{%- endmacro %}

{#- Whether a raw row was ingested after `watermark` (a timestamp expression). The loader
    writes _ingested_at as text, always `YYYY-MM-DD HH:MM:SS.ffffff` (sources.validation
    format_timestamp), so on DuckDB the text is compared with the watermark written the same
    way: no cast per row (over 21.9 million raw rows, 0.03 s against 0.95 s with it). -#}
{% macro ingested_after(watermark) -%}
  {%- if target.type == 'duckdb' -%}
    _ingested_at > strftime({{ watermark }}, '%Y-%m-%d %H:%M:%S.%f')
  {%- else -%}
    cast(_ingested_at as timestamp) > {{ watermark }}
  {%- endif -%}
{%- endmacro %}

{#- The watermark column every incrementally staged model carries. -#}
{% macro ingested_at() -%}
    cast(_ingested_at as timestamp) as _ingested_at
{%- endmacro %}

{#- When the build that wrote the row ran (its transaction's time, the same on every row it
    stages): the large staging tables' data tests read only the newest build's rows
    (macros/test_scope.sql). -#}
{% macro staged_at() -%}
    cast(current_timestamp as timestamp) as _staged_at
{%- endmacro %}

{#- When each event was first ingested, for the incremental models that must tell a new event
    from a re-delivered one: the staged row's own time when an earlier build staged it (a
    rerun that replaced the event's batch loaded it again, later), else its oldest loaded
    version's (the raw table keeps them all). Goes with first_ingested_prior below. -#}
{% macro first_ingested_at(key) -%}
    {%- set versions -%}min(cast(_ingested_at as timestamp)) over (partition by {{ key }}){%- endset -%}
    {%- if is_incremental() -%}
    coalesce(previously_staged.first_ingested_at, {{ versions }}) as _first_ingested_at
    {%- else -%}
    {{ versions }} as _first_ingested_at
    {%- endif %}
{%- endmacro %}

{#- The staged first-ingestion times of the changed records: a CTE body (an incremental build
    only). A table staged before the column existed gives its rows' ingestion time. -#}
{% macro first_ingested_prior(staged_key, source_cte, source_key) -%}
    select
        {{ staged_key }} as staged_key,
        coalesce({{ prior_column('_first_ingested_at', '_ingested_at') }}, _ingested_at) as first_ingested_at
    from {{ this }}
    where {{ staged_key }} in (select cast({{ source_key }} as varchar) from {{ source_cte }})
{%- endmacro %}

{#- Post-hook of stg_web__order_items: after the merge, the rows of events whose newest
    staged version is newer than the rows and no longer an order. -#}
{% macro delete_order_items_no_longer_orders() -%}
  {%- if is_incremental() -%}
    delete from {{ this }}
    where event_id in (
        select staged.event_id
        from {{ ref('stg_web__events') }} as staged
        inner join {{ this }} as items on items.event_id = staged.event_id
        where staged.event_name <> 'Order Completed'
            and staged._ingested_at > items._ingested_at
    )
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{#- In an incremental build, the filter (an `and` clause) keeping the rows staged after the
    newest this table holds. -#}
{% macro staged_after_kept() -%}
  {%- if is_incremental() -%}
    and _ingested_at > {{ staged_watermark() }}
  {%- endif -%}
{%- endmacro %}
