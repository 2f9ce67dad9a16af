{#- Email normalisation for matching (not for sending): trim and lowercase, optionally drop a
    plus-address tag and, for Gmail, dots in the local part. Role and test addresses
    (var identity_blocked_local_parts) normalise to null so that they never merge people. -#}
{% macro normalize_email(column) -%}
  {#- coalesce: on a column that is entirely null, DuckDB 2.0 otherwise fails to bind the
      CASE below ("BindBuiltinScalarFunction did not return a BoundFunctionExpression"). -#}
  {%- set e = "lower(trim(coalesce(" ~ column ~ ", '')))" -%}
  {%- set local = "split_part(" ~ e ~ ", '@', 1)" -%}
  {%- set domain = "split_part(" ~ e ~ ", '@', 2)" -%}
  {%- if var('identity_strip_plus_address') -%}
    {%- set local = "split_part(" ~ local ~ ", '+', 1)" -%}
  {%- endif -%}
  {%- if var('identity_gmail_dots') -%}
    {%- set local = "(case when " ~ domain ~ " in ('gmail.com', 'googlemail.com') then replace(" ~ local ~ ", '.', '') else " ~ local ~ " end)" -%}
  {%- endif -%}
  (case
     when position('@' in {{ e }}) = 0 then null
     when split_part({{ e }}, '@', 1) in ({% for p in var('identity_blocked_local_parts') %}'{{ p }}'{% if not loop.last %}, {% endif %}{% endfor %}) then null
     else {{ local }} || '@' || {{ domain }}
   end)
{%- endmacro %}

{#- A syntactically valid address (one @, a dot in the domain, no spaces). -#}
{% macro is_valid_email(column) -%}
  ({{ column }} is not null and {{ column }} like '%_@_%._%' and {{ column }} not like '% %' and {{ column }} not like '%@%@%')
{%- endmacro %}

{#- The deterministic rules in the order that decides which one placed a record (its
    match_rule): an id link before an address. The test on
    int_identity_edges_deterministic.rule lists the same rules, so a new rule fails the
    build until it is placed here. -#}
{% macro identity_deterministic_rules() -%}
  {{ return(['billing_metadata_crm_contact_id', 'web_user_id', 'anonymous_id_to_user_id',
             'email', 'billing_previous_email', 'crm_previous_email']) }}
{%- endmacro %}

{#- A deterministic rule's place in that order (1 first), as an integer. -#}
{% macro identity_rule_rank(column) -%}
case {{ column }}
    {%- for rule in identity_deterministic_rules() %}
        when '{{ rule }}' then {{ loop.index }}
    {%- endfor %}
    end
{%- endmacro %}

{#- The rule at a place in that order. -#}
{% macro identity_rule_at(rank) -%}
case {{ rank }}
    {%- for rule in identity_deterministic_rules() %}
        when {{ loop.index }} then '{{ rule }}'
    {%- endfor %}
    end
{%- endmacro %}
