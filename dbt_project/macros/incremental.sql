{#- Customer layers kept incrementally (engagement, behaviour). Such a model is a table of
    one row per customer of the identity map, merged by customer_id (delete+insert). Each
    row carries three bookkeeping columns:

      _identity_fingerprint  the customer's source records when the row was computed
      _ingested_at           the newest ingestion among the events it was computed from
      _as_of                 the as_of it was computed at

    An incremental run recomputes, over their whole history, only the customers whose row
    may have changed since (customers_to_rebuild):

      * their source records changed: a merge, a split, a new customer (fingerprint);
      * they have an event ingested after the newest the table holds: new, late or
        re-delivered events;
      * they have an event that crossed one of the model's windows (N days before as_of)
        between the as_of the table was computed at and this one, or became visible
        (window 0: it happened in between);
      * the build goes back in time (a backfill: as_of before the table's): everyone.

    Rows of customers who left the identity map are deleted after the merge
    (drop_retired_customers). A full refresh, or the first build, computes every customer:
    the same SQL without the filter, so both paths give the same rows. -#}

{% macro customers_to_rebuild(events, windows) -%}
  {%- set customers = ref('int_customers_fingerprinted') -%}
  {%- if is_incremental() %}
    select customer_id from {{ customers }}
    where {{ as_of() }} < (select max(_as_of) from {{ this }})
    union
    select customers.customer_id
    from {{ customers }} as customers
    left join {{ this }} as kept on kept.customer_id = customers.customer_id
    where kept.customer_id is null
        or kept._identity_fingerprint <> customers.identity_fingerprint
    union
    select customer_id
    from {{ events }}
    where customer_id is not null
        and (
            _ingested_at > {{ staged_watermark() }}
            {%- for days in [0] + windows %}
            or (
                occurred_at >= (select {{ days_before('max(_as_of)', days) }} from {{ this }})
                and occurred_at < {{ days_before(as_of(), days) }}
            )
            {%- endfor %}
        )
  {%- else %}
    select customer_id from {{ customers }}
  {%- endif %}
{%- endmacro %}

{#- After the merge: the rows of customers no longer in the identity map (merged away). -#}
{% macro drop_retired_customers() -%}
  {%- if is_incremental() -%}
    delete from {{ this }}
    where customer_id not in (select customer_id from {{ ref('int_customers_fingerprinted') }})
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{#- The bookkeeping columns of a row (see above): `customers` is the fingerprinted customers' relation, `newest_ingested` the newest _ingested_at of the customer's events. -#}
{% macro rebuild_bookkeeping(customers, newest_ingested) -%}
    {{ customers }}.identity_fingerprint as _identity_fingerprint,
    {{ newest_ingested }} as _ingested_at,
    {{ as_of() }} as _as_of
{%- endmacro %}

{#- Event tables linked to customers (int_web_events_identified, int_esp_events_identified),
    kept incrementally by event key. Each row carries its customer's fingerprint when it was
    linked (_identity_fingerprint) and the as_of it was linked at (_as_of). In an incremental
    run, the events CTE keeps only the events (by `key_column`) whose row may have changed
    (the model places changed_customers_cte() before it):

      * staged after the newest this table holds (_ingested_at): new or re-delivered;
      * linked to a customer whose source records changed since (stored fingerprint differs,
        or the customer is gone), or whose key now belongs to such a customer (`links`:
        [(identity source, the event's key expression)]): merges, splits, new links;
      * visible now and not at the table's as_of (occurred_at in between);
      * everything when the build goes back in time (a backfill); events no longer visible
        are then deleted by the post-hook (delete_invisible_events). -#}
{% macro events_to_relink(key_column, links) -%}
  {%- if is_incremental() %}
    and (
        {{ as_of() }} < (select max(_as_of) from {{ this }})
        or _ingested_at > {{ staged_watermark() }}
        or occurred_at >= (select max(_as_of) from {{ this }})
        {%- for source, key in links %}
        or {{ key }} in (
            select identities.source_record_id
            from {{ ref('int_identities_resolved') }} as identities
            inner join changed_customers as changed
                on changed.customer_id = identities.customer_id
            where identities.source = '{{ source }}'
        )
        {%- endfor %}
        or {{ key_column }} in (
            select kept.{{ key_column }}
            from {{ this }} as kept
            inner join changed_customers as changed
                on changed.customer_id = kept.customer_id
        )
    )
  {%- endif %}
{%- endmacro %}

{#- The CTE events_to_relink reads (placed before the model's events CTE, with its comma):
    the changed customers, computed once (the event table is scanned for them once). -#}
{% macro changed_customers_cte() -%}
  {%- if is_incremental() -%}
changed_customers as materialized (

    {{ changed_customers() }}

),
  {%- endif -%}
{%- endmacro %}

{#- Customers whose fingerprint is not the one this table linked its events with: changed,
    new, or gone from the identity map. After each build every row of the table carries its
    customer's fingerprint of that build (the events of a changed customer are linked
    again), so the post-hook keeps those fingerprints beside the table, one row per customer
    (linked_fingerprints_update), and this compares them with today's: 1.1 million rows
    instead of a scan of every event. Without the state (a table built before it) the
    stored events themselves are read, and a customer without events counts as changed. -#}
{% macro changed_customers() -%}
  {%- set state = linked_fingerprints(existing=true) -%}
  {%- if state is not none %}
    select coalesce(current_fp.customer_id, kept.customer_id) as customer_id
    from {{ ref('int_customers_fingerprinted') }} as current_fp
    full outer join {{ state }} as kept
        on kept.customer_id = current_fp.customer_id
    where kept.identity_fingerprint is null
        or current_fp.identity_fingerprint is null
        or kept.identity_fingerprint <> current_fp.identity_fingerprint
  {%- else %}
    select coalesce(current_fp.customer_id, kept.customer_id) as customer_id
    from {{ ref('int_customers_fingerprinted') }} as current_fp
    full outer join (
        select distinct customer_id, _identity_fingerprint
        from {{ this }}
        where customer_id is not null
    ) as kept
        on kept.customer_id = current_fp.customer_id
    where kept._identity_fingerprint is null
        or current_fp.identity_fingerprint is null
        or kept._identity_fingerprint <> current_fp.identity_fingerprint
  {%- endif %}
{%- endmacro %}

{#- The relation of a state table a model keeps beside itself, `<model><suffix>` (its
    post-hooks write it in the model's transaction); with existing=true, none when the
    table is not there or outside a run. -#}
{% macro model_state_table(suffix, existing=false) -%}
  {%- set name = this.identifier ~ suffix -%}
  {%- if existing -%}
    {%- if not execute or this is string -%}{{ return(none) }}{%- endif -%}
    {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier=name)) }}
  {%- endif -%}
  {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=name)) }}
{%- endmacro %}

{#- The state table `<model>__linked_fingerprints` (customer_id, identity_fingerprint) of an
    event table. -#}
{% macro linked_fingerprints(existing=false) -%}
  {{ return(model_state_table('__linked_fingerprints', existing)) }}
{%- endmacro %}

{#- Post-hook of an event table: its customers' fingerprints of this build, written in the
    model's transaction (so they never disagree with the table). -#}
{% macro linked_fingerprints_update() -%}
  {%- if not execute or this is string -%}{{ return('select 1') }}{%- endif -%}
  {%- set state = linked_fingerprints() -%}
  {%- do run_query('drop table if exists ' ~ state) -%}
  {%- do run_query('create table ' ~ state ~ ' as select customer_id, identity_fingerprint from ' ~ ref('int_customers_fingerprinted')) -%}
  {{ return('select 1') }}
{%- endmacro %}

{#- After a merge into an event table: events a backfill no longer sees, and (inner) events
    that lost their customer. -#}
{% macro delete_invisible_events(unlinked=false) -%}
  {%- if is_incremental() -%}
    delete from {{ this }}
    where occurred_at >= {{ as_of() }}{% if unlinked %} or customer_id is null{% endif %}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}
