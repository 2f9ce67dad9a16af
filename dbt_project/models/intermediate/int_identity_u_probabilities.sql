{{ config(
    materialized='incremental',
    unique_key=['comparison', 'level'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook="delete from {{ this }} where sample_fingerprint <> (select sample_fingerprint from {{ this }} order by _computed_at desc limit 1)",
) }}

-- u probabilities: how often records of different people land in each comparison level.
--
-- Estimated on every pair of a deterministic sample of var identity_u_sample_records
-- fuzzy-tier records (ordered by a hash of the record key; nearly all such pairs are two
-- different people), then smoothed towards the level's prior with a weight of
-- var identity_u_prior_pairs pairs, so that a tiny data set falls back to the priors.
--
-- Incremental: comparing the sample's million pairs is the same work at any data size,
-- and the sample rarely changes (a new record must hash among the lowest). The estimate is
-- kept with a fingerprint of the sample (its records' attributes, the vars and the
-- comparison definitions) and computed again only when that fingerprint changes; the
-- post-hook drops rows of an older sample (a level that no longer exists).
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

priors as (

    {{ identity_level_priors() }}

),

candidates as materialized (

    select *
    from records
    where is_fuzzy_candidate
    order by md5(record_key)
    limit {{ var('identity_u_sample_records') }}

),

sample_fingerprint as (

    select
        md5(
            '{{ identity_definitions_digest() }}|{{ var('identity_u_sample_records') }}|{{ var('identity_u_prior_pairs') }}|'
            || coalesce(string_agg(
                concat_ws(
                    '|', record_key,
                    {%- for column in ['first_name_key', 'last_name_key', 'cast(birth_date as varchar)', 'postcode_key', 'city_key', 'phone_key', 'email_normalized', 'employer_domain_key'] %}
                    coalesce({{ column }}, chr(1)){% if not loop.last %},{% endif %}
                    {%- endfor %}
                ),
                ',' order by record_key
            ), '')
        ) as sample_fingerprint
    from candidates

),

-- The sample's fingerprint when the estimate must be computed (no row: it is current).
stale as (

    select sample_fingerprint.sample_fingerprint from sample_fingerprint
    {%- if is_incremental() %}
    where not exists (
            select 1 from {{ this }} as this
            where this.sample_fingerprint = sample_fingerprint.sample_fingerprint
        )
    {%- endif %}

),

sampled as materialized (

    select candidates.*
    from candidates
    cross join stale

),

compared as materialized (

    select
        {{ identity_comparison_levels() }}
    from sampled as a
    inner join sampled as b on a.record_key < b.record_key

),

observed as (

    {%- for c in identity_comparisons() %}
    select '{{ c.name }}' as comparison, g_{{ c.name }} as level, count(*) as pairs
    from compared
    where g_{{ c.name }} >= 0
    group by g_{{ c.name }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

totals as (

    select comparison, sum(pairs) as pairs
    from observed
    group by comparison

),

final as (

    select
        priors.comparison,
        priors.level,
        priors.level_label,
        coalesce(observed.pairs, 0) as sampled_pairs,
        (coalesce(observed.pairs, 0) + {{ var('identity_u_prior_pairs') }} * priors.u_prior)
        / (coalesce(totals.pairs, 0) + {{ var('identity_u_prior_pairs') }}) as u_probability,
        stale.sample_fingerprint,
        cast(current_timestamp as timestamp) as _computed_at
    from priors
    cross join stale
    left join observed on observed.comparison = priors.comparison and observed.level = priors.level
    left join totals on totals.comparison = priors.comparison

)

select * from final
