{#- Email normalisation for matching (not for sending): trim and lowercase, optionally drop a
    plus-address tag and, for Gmail, dots in the local part. Role and test addresses
    (var identity_blocked_local_parts) normalise to null so that they never merge people. -#}
{% macro normalize_email(column) -%}
  {{ normalize_cleaned_email(email_cleaned(column)) }}
{%- endmacro %}

{#- An address trimmed, lower-cased and '' when null: what normalize_cleaned_email reads. -#}
{% macro email_cleaned(column) -%}
  lower(trim(coalesce({{ column }}, '')))
{%- endmacro %}

{#- normalize_email over an address already cleaned (email_cleaned). normalize_email
    repeats that cleaning six times in its expression; a model that selects the cleaned
    address first evaluates it once a row (int_identity_records_unioned). -#}
{% macro normalize_cleaned_email(e) -%}
  {#- coalesce (in email_cleaned): on a column that is entirely null, DuckDB 2.0 otherwise
      fails to bind the CASE below ("BindBuiltinScalarFunction did not return a
      BoundFunctionExpression"). -#}
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
