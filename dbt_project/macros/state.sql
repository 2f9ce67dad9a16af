{#- Helpers for the stateful models in models/state/ and models/activation/: they read the
    previous build of themselves ({{ this }}) and carry it forward. -#}

{#- The run date: the start of the data interval being built (Airflow's ds). -#}
{% macro run_date() -%}
    cast('{{ interval_var("run_date") }}' as date)
{%- endmacro %}

{#- A column of {{ this }}, or `fallback` when the existing table predates that column (a
    warehouse written by an older profilecast): lets a new column arrive without a full
    refresh, which these models refuse. -#}
{% macro prior_column(name, fallback) -%}
    {#- In a unit test `this` is the given rows (a string), which have every column. -#}
    {%- if not execute or this is string -%}{{ name }}{%- else -%}
    {%- set cols = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- if name | lower in cols -%}{{ name }}{%- else -%}{{ fallback }}{%- endif -%}
    {%- endif -%}
{%- endmacro %}
