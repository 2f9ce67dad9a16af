-- The fuzzy tier's edges: every candidate pair that was accepted or scored at least var
-- identity_near_miss_score, with why. The deterministic edges stay in
-- int_identity_edges_deterministic; int_identity_clusters_resolved and
-- customer_identity_edges read both (copying the millions of deterministic edges here as
-- well cost a full rewrite of them every day).
--
-- Fuzzy candidates (int_identity_pairs_compared) are scored with the
-- Fellegi-Sunter model: the match weight is the prior log2 odds that two records are one
-- person plus, per comparison, log2(m / u) of the pair's level (0 when a side is missing).
-- m comes from int_identity_m_probabilities (EM), u from int_identity_u_probabilities
-- (random pairs), and for an exact match on a name, birth date, postcode or city the
-- value's term frequency replaces u (floored at var identity_term_frequency_min_u).
-- The prior is the share of all record pairs estimated to match: the pairs that agree
-- exactly on both names and on birth date, postcode, phone or email, or whose emails are
-- at most two typos apart, divided by var identity_prior_recall. A pair is accepted at var identity_match_threshold (a match
-- weight; 7 means odds of 128 to 1) unless it would join two clusters that each hold a
-- different id of an exclusive source (var identity_exclusive_sources). A rejected pair is
-- kept only from var identity_near_miss_score up: nearly all blocked pairs score far below.
-- So a pair is scored in full only when its best possible score (each level's weight, or
-- the rarest value's for an exact match) reaches that: 16% of the pairs at 100,000
-- contacts. The result is the same as scoring every pair.
with

records as (

    select * from {{ ref('int_identity_records_unioned') }}

),

deterministic as (

    select * from {{ ref('int_identity_clusters_deterministic') }}

),

-- Read twice (the strict pairs, the candidates), each time only for a few columns: copying
-- the whole table once took longer than the two scans.
pairs_compared as not materialized (

    select * from {{ ref('int_identity_pairs_compared') }}

),

{%- set comparisons = identity_comparisons() %}
{%- set level_columns = [] %}
{%- for c in comparisons %}{% for lv in c.levels %}{% set _ = level_columns.append((c.name, lv.level)) %}{% endfor %}{% endfor %}
{%- set keep_from = 'least(' ~ var('identity_near_miss_score') ~ ', ' ~ var('identity_match_threshold') ~ ')' %}

term_frequencies as (

    select * from {{ ref('int_identity_term_frequencies') }}

),

weights as (

    select
        m.comparison,
        m.level,
        m.level_label,
        m.m_probability,
        ln(m.m_probability / u.u_probability) / ln(2.0) as match_weight
    from {{ ref('int_identity_m_probabilities') }} as m
    inner join {{ ref('int_identity_u_probabilities') }} as u
        on u.comparison = m.comparison and u.level = m.level

),

-- The strict pairs (both names and one more exact match, or near-identical emails) among
-- the candidates whose records are both in today's clusters: they set the prior.
strict_pairs as (

    select count(*) as pairs_count
    from pairs_compared
    inner join deterministic as da on da.record_key = pairs_compared.node_a
    inner join deterministic as db on db.record_key = pairs_compared.node_b
    where (
        {{ identity_exact('first_name') }} and {{ identity_exact('last_name') }}
        and (
            {{ identity_exact('birth_date') }} or {{ identity_exact('postcode') }}
            or {{ identity_exact('phone') }} or {{ identity_exact('email') }}
        )
    )
    -- Noisy data rarely agrees exactly on both names; a near-identical address is as strong
    -- a sign of one person and keeps the estimate from collapsing there.
    or g_email >= 2

),

prior_odds as (

    select
        ln(p / (1.0 - p)) / ln(2.0) as prior_weight
    from (
        select
            least(
                greatest(strict_pairs.pairs_count, 1) / {{ var('identity_prior_recall') }}
                / greatest(candidates.records_count * (candidates.records_count - 1) / 2.0, 1.0),
                0.5
            ) as p
        from strict_pairs
        cross join (
            select count(*) as records_count
            from records
            where is_fuzzy_candidate
        ) as candidates
    ) as estimated

),

-- The most a comparison at each level can add: its weight, or for an exact match on a
-- term-frequency column the weight of the rarest value, if that is more.
rarest as (

    select
        comparison,
        ln(greatest(min(term_frequency), {{ var('identity_term_frequency_min_u') }})) / ln(2.0) as log2_frequency
    from term_frequencies
    group by comparison

),

level_bounds as (

    select
        weights.comparison,
        weights.level,
        case
            when weights.level_label = 'exact' and rarest.log2_frequency is not null
                then greatest(weights.match_weight, ln(weights.m_probability) / ln(2.0) - rarest.log2_frequency)
            else weights.match_weight
        end as bound
    from weights
    left join rarest on rarest.comparison = weights.comparison

),

-- The same as one row, a column per (comparison, level), with the prior. A level without
-- a weight adds 0, as in scoring.
bounds as (

    select
        {%- for name, level in level_columns %}
        max(case when level_bounds.comparison = '{{ name }}' and level_bounds.level = {{ level }} then level_bounds.bound end)
            as b_{{ name }}_{{ level }},
        {%- endfor %}
        max(prior_odds.prior_weight) as prior_weight
    from level_bounds
    cross join prior_odds

),

-- The candidate pairs whose best possible score reaches the lowest score kept: nearly
-- every blocked pair falls far below it and is not scored further. The bound is never
-- below a pair's score, and the margin covers the rounding of a sum taken in another
-- order, so no pair that scoring would keep is left out.
candidates as (

    select pairs_compared.*
    from pairs_compared
    cross join bounds
    where bounds.prior_weight
        {%- for c in comparisons %}
        + case pairs_compared.g_{{ c.name }}
            {%- for lv in c.levels %}
            when {{ lv.level }} then coalesce(bounds.b_{{ c.name }}_{{ lv.level }}, 0.0)
            {%- endfor %}
            else 0.0
        end
        {%- endfor %}
        >= {{ keep_from }} - 0.000001

),

-- Today's deterministic labels on those candidates. Materialised, with the label
-- comparison computed as a column: written as a filter on two columns, the optimiser
-- turned it into a nested-loop join of every pair of labels. Only the columns scoring reads.
pairs as materialized (

    select
        candidates.node_a,
        candidates.node_b,
        {%- for c in comparisons %}
        candidates.g_{{ c.name }},
        {%- if c.tf %}
        candidates.{{ c.name }}_value,
        {%- endif %}
        {%- endfor %}
        da.deterministic_label as label_a,
        db.deterministic_label as label_b,
        case when da.deterministic_label = db.deterministic_label then 1 else 0 end as is_same_cluster
    from candidates
    inner join deterministic as da on da.record_key = candidates.node_a
    inner join deterministic as db on db.record_key = candidates.node_b

),

-- Materialised: one row per candidate pair from different deterministic clusters, with the
-- weight of each comparison (term-frequency adjusted where the comparison uses it).
compared as materialized (

    select
        pairs.node_a,
        pairs.node_b,
        pairs.label_a,
        pairs.label_b,
        {%- for c in comparisons %}
        case
            when pairs.g_{{ c.name }} < 0 then null
            {%- if c.tf %}
            when w_{{ c.name }}.level_label = 'exact' and tf_{{ c.name }}.term_frequency is not null
                then ln(
                        w_{{ c.name }}.m_probability
                        / greatest(tf_{{ c.name }}.term_frequency, {{ var('identity_term_frequency_min_u') }})
                    ) / ln(2.0
                    )
            {%- endif %}
            else w_{{ c.name }}.match_weight
        end as weight_{{ c.name }},
        w_{{ c.name }}.level_label as level_{{ c.name }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from pairs
        {%- for c in comparisons %}
    left join weights as w_{{ c.name }}
        on w_{{ c.name }}.comparison = '{{ c.name }}' and w_{{ c.name }}.level = pairs.g_{{ c.name }}
    {%- if c.tf %}
    left join term_frequencies as tf_{{ c.name }}
        on tf_{{ c.name }}.comparison = '{{ c.name }}' and tf_{{ c.name }}.value = pairs.{{ c.name }}_value
    {%- endif %}
        {%- endfor %}
    where pairs.is_same_cluster = 0

),

scored as (

    select
        compared.*,
        prior_odds.prior_weight
        {%- for c in comparisons %}
        + coalesce(compared.weight_{{ c.name }}, 0.0)
        {%- endfor %} as score
    from compared
    cross join prior_odds

),

-- The pairs worth keeping: accepted ones and near misses. The rest (nearly every blocked
-- pair: at 20,000 contacts 97% score under -10) stay only in int_identity_pairs_compared.
kept as (

    select
        scored.node_a,
        scored.node_b,
        scored.label_a,
        scored.label_b,
        scored.score,
        concat_ws(
            ', '
            {%- for c in comparisons %},
            case
                when scored.level_{{ c.name }} is not null and scored.weight_{{ c.name }} is not null
                    then '{{ c.name }} ' || scored.level_{{ c.name }} || ' '
                        || cast(round(cast(scored.weight_{{ c.name }} as numeric), 1) as varchar)
            end
            {%- endfor %}
        ) as match_details
    from scored
    where scored.score >= {{ keep_from }}

),

exclusive_ids as (

    select deterministic_label, source, min(source_record_id) as some_id, count(*) as ids
    from deterministic
    where source in ({% for s in var('identity_exclusive_sources') %}'{{ s }}'{% if not loop.last %}, {% endif %}{% endfor %})
    group by deterministic_label, source

),

conflicts as (

    select distinct kept.node_a, kept.node_b, x.source
    from kept
    inner join exclusive_ids as x on x.deterministic_label = kept.label_a
    inner join exclusive_ids as y
        on y.deterministic_label = kept.label_b
        and y.source = x.source
        and (y.some_id <> x.some_id or x.ids > 1 or y.ids > 1)
    where kept.score >= {{ var('identity_match_threshold') }}

),

fuzzy_edges as (

    select
        kept.node_a,
        kept.node_b,
        'fuzzy' as rule,
        cast(kept.score as numeric(6, 2)) as score,
        kept.score >= {{ var('identity_match_threshold') }} and conflicts.source is null as is_accepted,
        case
            when kept.score < {{ var('identity_match_threshold') }} then 'below_threshold'
            when conflicts.source is not null then 'different_' || conflicts.source || '_ids'
        end as rejection_reason,
        'prior ' || cast(round(cast(prior_odds.prior_weight as numeric), 1) as varchar) || ', '
        || kept.match_details as match_details
    from kept
    cross join prior_odds
    left join conflicts
        on conflicts.node_a = kept.node_a and conflicts.node_b = kept.node_b

),

final as (

    select node_a, node_b, rule, score, is_accepted, rejection_reason, match_details
    from fuzzy_edges

)

select * from final
