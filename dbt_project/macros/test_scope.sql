{#- Data tests of the large incremental tables check only the rows the build wrote (their
    `where` config). dbt renders a test's `where` when it parses, before a build knows its
    interval, so the config names the interval by placeholders, filled here when the test
    runs:

      __as_of__     the end of the interval being built (as_of());
      __relation__  the tested table, for a condition that reads it (the rows of its newest
                    build: `col = (select max(col) from __relation__)`).

    A merge by key (delete+insert) removes the stored rows of every key it writes, so a
    duplicate key can only come in with the rows written, and a full refresh writes, and
    so tests, every row. -#}
{% macro get_where_subquery(relation) -%}
  {%- set where = config.get('where', '') -%}
  {%- if not where -%}
    {{ return(relation) }}
  {%- endif -%}
  {%- set where = where | replace('__as_of__', as_of()) | replace('__relation__', relation | string) -%}
  {%- set filtered -%}
    (select * from {{ relation }} where {{ where }}) dbt_subquery
  {%- endset -%}
  {{ return(filtered) }}
{%- endmacro %}
