{#- Helpers that hide the few differences between DuckDB and PostgreSQL. -#}

{#- The text at a JSON path, e.g. json_text('metadata', ['crm_contact_id']) or
    json_text('items', ['data', 0, 'price', 'id']). -#}
{% macro json_text(column, path) -%}
  {%- if target.type == 'postgres' -%}
    (cast({{ column }} as jsonb) #>> '{ {{- path | join(",") -}} }')
  {%- else -%}
    {%- set ns = namespace(p='$') -%}
    {%- for part in path -%}
      {%- if part is number -%}{%- set ns.p = ns.p ~ '[' ~ part ~ ']' -%}
      {%- else -%}{%- set ns.p = ns.p ~ '.' ~ part -%}{%- endif -%}
    {%- endfor -%}
    json_extract_string({{ column }}, '{{ ns.p }}')
  {%- endif -%}
{%- endmacro %}

{#- The end of the data interval being built, as a timestamp (never now()). -#}
{% macro as_of() -%}
  cast('{{ interval_var("as_of") }}' as timestamp)
{%- endmacro %}

{#- A value that changes with every data interval (as_of, run_date). The pipeline hands it
    over in the environment (PROFILECAST_AS_OF, PROFILECAST_RUN_DATE), read only when a
    model runs: as a --vars value it would change dbt's parse checksum and make every build
    re-parse the whole project (about 8 s). Without it (unit-test overrides, an ad-hoc
    `dbt build`) the var of that name is used. -#}
{% macro interval_var(name) -%}
  {%- set from_env = env_var('PROFILECAST_' ~ (name | upper), '') if execute else '' -%}
  {{- from_env if from_env else var(name) -}}
{%- endmacro %}

{#- A timestamp shifted by a number of days. -#}
{% macro days_before(ts, days) -%}
  {%- if target.type == 'postgres' -%}
    ({{ ts }} - interval '{{ days }} days')
  {%- else -%}
    ({{ ts }} - interval {{ days }} day)
  {%- endif -%}
{%- endmacro %}

{#- Whole days between two timestamps (later minus earlier). -#}
{% macro days_between(earlier, later) -%}
  {%- if target.type == 'postgres' -%}
    cast(floor(extract(epoch from ({{ later }} - {{ earlier }})) / 86400) as integer)
  {%- else -%}
    cast(floor(date_diff('second', {{ earlier }}, {{ later }}) / 86400) as integer)
  {%- endif -%}
{%- endmacro %}

{#- Stripe-style amounts are in the currency's minor unit; zero-decimal currencies are not. -#}
{% macro minor_to_major(amount, currency) -%}
  (case
     when lower({{ currency }}) in ('bif','clp','djf','gnf','jpy','kmf','krw','mga','pyg','rwf','ugx','vnd','vuv','xaf','xof','xpf')
       then cast({{ amount }} as numeric(18, 2))
     else cast(cast({{ amount }} as numeric(18, 2)) / 100 as numeric(18, 2))
   end)
{%- endmacro %}

{#- A stable hash id. -#}
{% macro hash_id(prefix, expr) -%}
  ('{{ prefix }}' || substr(md5({{ expr }}), 1, 16))
{%- endmacro %}

{#- A join that turns a JSON array at `key` of `column` into rows aliased `item(value)`;
    read fields with json_item_text('key'). -#}
{% macro join_json_array(column, key) -%}
  {%- if target.type == 'postgres' -%}
    cross join lateral jsonb_array_elements(
        case when jsonb_typeof(cast({{ column }} as jsonb) -> '{{ key }}') = 'array'
             then cast({{ column }} as jsonb) -> '{{ key }}' else '[]'::jsonb end
    ) as item(value)
  {%- else -%}
    cross join unnest(
        case when json_type({{ column }}, '$.{{ key }}') = 'ARRAY'
             then cast(json_extract({{ column }}, '$.{{ key }}') as json[]) else [] end
    ) as item(value)
  {%- endif -%}
{%- endmacro %}

{% macro json_item_text(key) -%}
  {%- if target.type == 'postgres' -%}(item.value ->> '{{ key }}')
  {%- else -%}json_extract_string(item.value, '$.{{ key }}'){%- endif -%}
{%- endmacro %}

{#- A profile's last sign of life: newest open, click or visit, else when it was created. -#}
{% macro last_activity_at() -%}
  coalesce(greatest(last_open_at, last_click_at, last_seen_at), crm_created_at)
{%- endmacro %}

{#- An aggregate digest of a set of distinct text values: their count and the XOR of their
    64-bit hashes (DuckDB's hash, PostgreSQL's hashtextextended). Order-free, so it needs no
    sort nor a string of every value; it changes whenever the set does, but for a 2^-64
    chance. Feed it distinct values: a value twice cancels in the XOR. -#}
{% macro set_digest(expr) -%}
  {%- if target.type == 'postgres' -%}
  (count(*) || ':' || bit_xor(hashtextextended({{ expr }}, 0)))
  {%- else -%}
  (count(*) || ':' || bit_xor(hash({{ expr }})))
  {%- endif -%}
{%- endmacro %}

{#- Values joined with a separator, in sorted order (DuckDB and PostgreSQL alike). -#}
{% macro ordered_string_agg(expr, separator) -%}
  string_agg({{ expr }}, '{{ separator }}' order by {{ expr }})
{%- endmacro %}

{#- The marketing consent topics (var consent_topics: [{topic, group}]) as a relation
    (topic, group_id); empty when none is declared. -#}
{% macro consent_topics_relation() -%}
  {%- set topics = var('consent_topics', []) -%}
  {%- if topics is string or topics | length == 0 -%}
    select cast(null as varchar) as topic, cast(null as varchar) as group_id where 1 = 0
  {%- else -%}
    {%- for t in topics %}
    select cast('{{ t["topic"] }}' as varchar) as topic,
        {% if t["group"] is not none %}cast('{{ t["group"] }}' as varchar){% else %}cast(null as varchar){% endif %} as group_id
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
  {%- endif -%}
{%- endmacro %}

{#- The per-country consent regimes (var consent_regimes: {default, unknown, countries:
    [{country, regime}]}) as a relation (country, regime); empty when none is declared. -#}
{% macro consent_regimes_relation() -%}
  {%- set regimes = var('consent_regimes', {}) -%}
  {%- set countries = regimes['countries'] if regimes is mapping and 'countries' in regimes else [] -%}
  {%- if countries | length == 0 -%}
    select cast(null as varchar) as country, cast(null as varchar) as regime where 1 = 0
  {%- else -%}
    {%- for c in countries %}
    select cast('{{ c["country"] }}' as varchar) as country, cast('{{ c["regime"] }}' as varchar) as regime
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
  {%- endif -%}
{%- endmacro %}

{#- The regime for customers whose country has no entry ('default') or is unknown. -#}
{% macro consent_regime_fallback(which) -%}
  {%- set regimes = var('consent_regimes', {}) -%}
  {%- if regimes is not mapping -%}{%- set regimes = {} -%}{%- endif -%}
  '{{ regimes[which] if which in regimes else (regimes['default'] if 'default' in regimes else 'opt_out') }}'
{%- endmacro %}

{#- A timestamp plus a whole number of days taken from a column. -#}
{% macro plus_days(ts, days_column) -%}
  {%- if target.type == 'postgres' -%}
    ({{ ts }} + make_interval(days => {{ days_column }}))
  {%- else -%}
    ({{ ts }} + to_days(cast({{ days_column }} as integer)))
  {%- endif -%}
{%- endmacro %}
