-- Term frequencies for the comparisons that use them: the share of fuzzy-tier records that
-- carry each value. For an exact match the value's frequency replaces the average u
-- (agreeing on a common name is weaker evidence than agreeing on a rare one).
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}
    where is_fuzzy_candidate

),

counted as (

    {%- set tf_comparisons = identity_comparisons() | selectattr('tf') | list %}
    {%- for c in tf_comparisons %}
    select
        '{{ c.name }}' as comparison,
        cast({{ c.tf }} as varchar) as value,
        count(*) as records_count,
        sum(count(*)) over () as total_count
    from records
    where {{ c.tf }} is not null
    group by {{ c.tf }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

final as (

    select
        comparison,
        value,
        records_count,
        cast(records_count as double precision) / total_count as term_frequency
    from counted

)

select * from final
