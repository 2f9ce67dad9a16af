-- m probabilities: how often records of the same person land in each comparison level,
-- estimated without labels by expectation maximisation (Fellegi-Sunter with u fixed).
--
-- Blocked pairs are not a random sample: every candidate agrees on some blocking key, so a
-- session only trains the comparisons it did not select on (macros/identity_matching.sql):
-- the "names" session (exact first and last name) trains birth date, postcode, city,
-- phone, email and employer; the "birth_date" session (exact birth date) trains the names.
-- The pairs are first reduced to distinct level patterns with counts, so every iteration
-- works on a few hundred rows. Each estimate is smoothed towards its prior with a weight of
-- var identity_m_prior_pairs pairs; a session without pairs keeps the priors.
{%- set sessions = identity_em_sessions() %}
{%- set comparisons = identity_comparisons() %}
{#- | int(15): a real var is already an integer; sqlfluff's lint-time stand-in is not -#}
{%- set iterations = var('identity_em_iterations') | int(15) %}
with

pairs as (

    select * from {{ ref('int_identity_pairs_compared') }}

),

priors as (

    {{ identity_level_priors() }}

),

u as (

    select comparison, level, u_probability from {{ ref('int_identity_u_probabilities') }}

),

patterns as (

    {%- for session, condition in sessions.items() %}
    select
        '{{ session }}' as session,
        {%- for c in comparisons %}
        g_{{ c.name }},
        {%- endfor %}
        count(*) as pairs_count
    from pairs
    where {{ condition }}
    group by {% for c in comparisons %}g_{{ c.name }}{% if not loop.last %}, {% endif %}{% endfor %}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

numbered as (

    select
        *,
        row_number() over (order by session{% for c in comparisons %}, g_{{ c.name }}{% endfor %}) as pattern_id
    from patterns

),

-- One row per (pattern, trained comparison) with a non-missing level.
pattern_levels as (

    {%- for c in comparisons %}
    select
        numbered.session,
        numbered.pattern_id,
        numbered.pairs_count,
        '{{ c.name }}' as comparison,
        numbered.g_{{ c.name }} as level
    from numbered
    where numbered.session = '{{ c.trained_by }}' and numbered.g_{{ c.name }} >= 0
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

session_patterns as (

    select session, pattern_id, pairs_count from numbered

),

m_0 as (

    select comparison, level, m_prior as m_probability from priors

),

lambda_0 as (

    select session, cast(0.5 as double precision) as match_rate from session_patterns group by session

),
{%- for i in range(iterations) %}

-- Iteration {{ i + 1 }}. E step: each pattern's probability of being a match.
posterior_{{ i + 1 }} as (

    select
        sp.session,
        sp.pattern_id,
        sp.pairs_count,
        1.0 / (
            1.0 + (1.0 - l.match_rate) / l.match_rate
            * exp(-least(greatest(coalesce(llr.log_ratio, 0.0), -60.0), 60.0))
        ) as match_probability
    from session_patterns as sp
    inner join lambda_{{ i }} as l on l.session = sp.session
    left join (
        select pl.pattern_id, sum(ln(m.m_probability) - ln(u.u_probability)) as log_ratio
        from pattern_levels as pl
        inner join m_{{ i }} as m on m.comparison = pl.comparison and m.level = pl.level
        inner join u on u.comparison = pl.comparison and u.level = pl.level
        group by pl.pattern_id
    ) as llr on llr.pattern_id = sp.pattern_id

),

-- M step: new m per level (smoothed towards the prior) and the share of matches.
m_{{ i + 1 }} as (

    select
        priors.comparison,
        priors.level,
        (coalesce(weighted.matched, 0.0) + {{ var('identity_m_prior_pairs') }} * priors.m_prior)
        / (
            coalesce(sum(weighted.matched) over (partition by priors.comparison), 0.0)
            + {{ var('identity_m_prior_pairs') }}
        ) as m_probability
    from priors
    left join (
        select pl.comparison, pl.level, sum(pl.pairs_count * p.match_probability) as matched
        from pattern_levels as pl
        inner join posterior_{{ i + 1 }} as p on p.pattern_id = pl.pattern_id
        group by pl.comparison, pl.level
    ) as weighted on weighted.comparison = priors.comparison and weighted.level = priors.level

),

lambda_{{ i + 1 }} as (

    select
        session,
        least(greatest(sum(pairs_count * match_probability) / sum(pairs_count), 0.001), 0.999) as match_rate
    from posterior_{{ i + 1 }}
    group by session

),
{%- endfor %}

final as (

    select
        priors.comparison,
        priors.level,
        priors.level_label,
        priors.trained_by as em_session,
        m.m_probability
    from priors
    inner join m_{{ iterations }} as m on m.comparison = priors.comparison and m.level = priors.level

)

select * from final
