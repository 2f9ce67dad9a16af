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
            _ingested_at > (
                select coalesce(max(_ingested_at), cast('1900-01-01' as timestamp)) from {{ this }}
            )
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

{#- The bookkeeping columns of a row (see above); `events` is the customer's events CTE. -#}
{% macro rebuild_bookkeeping(customers, newest_ingested) -%}
    {{ customers }}.identity_fingerprint as _identity_fingerprint,
    {{ newest_ingested }} as _ingested_at,
    {{ as_of() }} as _as_of
{%- endmacro %}
