-- u probabilities: how often records of different people land in each comparison level.
--
-- Estimated on every pair of a deterministic sample of var identity_u_sample_records
-- fuzzy-tier records (int_identity_sample_pairs_compared: nearly all such pairs are two
-- different people), then smoothed towards the level's prior with a weight of
-- var identity_u_prior_pairs pairs, so that a tiny data set falls back to the priors.
with

priors as (

    {{ identity_level_priors() }}

),

compared as (

    select * from {{ ref('int_identity_sample_pairs_compared') }}

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
        / (coalesce(totals.pairs, 0) + {{ var('identity_u_prior_pairs') }}) as u_probability
    from priors
    left join observed on observed.comparison = priors.comparison and observed.level = priors.level
    left join totals on totals.comparison = priors.comparison

)

select * from final
