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
