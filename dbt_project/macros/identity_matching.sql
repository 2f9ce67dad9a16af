{#- The fuzzy tier's comparisons, in one readable place.

    Each comparison looks at one attribute of two records (`a` and `b` in
    int_identity_records_unioned) and puts the pair in a level: -1 when either side is
    missing (no evidence either way), 0 for "different", and higher levels for closer
    agreement, the top level being exact. Per level:
      m_prior  P(level | same person)       u_prior  P(level | different people)
    The priors only matter while a data set is too small to estimate from: u is estimated
    on random record pairs (int_identity_u_probabilities) and m by expectation
    maximisation over the blocked pairs (int_identity_m_probabilities), each smoothed
    towards its prior. `tf` names the column whose term frequencies replace u for an exact
    match (agreeing on "smith" says less than agreeing on "okafor"). `trained_by` is the EM
    session that estimates m: a session only trains comparisons it did not block on. -#}
{% macro identity_comparisons() %}
  {%- set sim_first = name_similarity('a.first_name_key', 'b.first_name_key') -%}
  {%- set sim_last = name_similarity('a.last_name_key', 'b.last_name_key') -%}
  {%- set swapped = "(a.first_name_key = b.last_name_key and a.last_name_key = b.first_name_key)" -%}
  {{ return([
    {'name': 'first_name', 'tf': 'first_name_key', 'trained_by': 'birth_date',
     'null_when': 'a.first_name_key is null or b.first_name_key is null',
     'levels': [
        {'level': 3, 'label': 'exact', 'when': 'a.first_name_key = b.first_name_key or ' ~ swapped, 'm_prior': 0.75, 'u_prior': 0.01},
        {'level': 2, 'label': 'similar', 'when': sim_first ~ ' >= 0.8', 'm_prior': 0.1, 'u_prior': 0.002},
        {'level': 1, 'label': 'initial', 'when': 'substr(a.first_name_key, 1, 1) = substr(b.first_name_key, 1, 1)', 'm_prior': 0.1, 'u_prior': 0.06},
        {'level': 0, 'label': 'different', 'm_prior': 0.05, 'u_prior': 0.928}]},
    {'name': 'last_name', 'tf': 'last_name_key', 'trained_by': 'birth_date',
     'null_when': 'a.last_name_key is null or b.last_name_key is null',
     'levels': [
        {'level': 3, 'label': 'exact', 'when': 'a.last_name_key = b.last_name_key or ' ~ swapped, 'm_prior': 0.8, 'u_prior': 0.002},
        {'level': 2, 'label': 'similar', 'when': sim_last ~ ' >= 0.8', 'm_prior': 0.1, 'u_prior': 0.001},
        {'level': 1, 'label': 'initial', 'when': 'substr(a.last_name_key, 1, 1) = substr(b.last_name_key, 1, 1)', 'm_prior': 0.05, 'u_prior': 0.06},
        {'level': 0, 'label': 'different', 'm_prior': 0.05, 'u_prior': 0.937}]},
    {'name': 'birth_date', 'tf': 'birth_date', 'trained_by': 'names',
     'null_when': 'a.birth_date is null or b.birth_date is null',
     'levels': [
        {'level': 3, 'label': 'exact', 'when': 'a.birth_date = b.birth_date', 'm_prior': 0.8, 'u_prior': 0.0001},
        {'level': 2, 'label': 'one_typo', 'when': 'levenshtein(cast(a.birth_date as varchar), cast(b.birth_date as varchar)) <= 1', 'm_prior': 0.12, 'u_prior': 0.002},
        {'level': 1, 'label': 'within_a_year', 'when': 'abs(extract(year from a.birth_date) - extract(year from b.birth_date)) <= 1', 'm_prior': 0.03, 'u_prior': 0.05},
        {'level': 0, 'label': 'different', 'm_prior': 0.05, 'u_prior': 0.9479}]},
    {'name': 'postcode', 'tf': 'postcode_key', 'trained_by': 'names',
     'null_when': 'a.postcode_key is null or b.postcode_key is null',
     'levels': [
        {'level': 3, 'label': 'exact', 'when': 'a.postcode_key = b.postcode_key', 'm_prior': 0.6, 'u_prior': 0.0005},
        {'level': 2, 'label': 'same_sector', 'when': 'length(a.postcode_key) > 4 and left(a.postcode_key, length(a.postcode_key) - 2) = left(b.postcode_key, length(b.postcode_key) - 2)', 'm_prior': 0.08, 'u_prior': 0.001},
        {'level': 1, 'label': 'same_district', 'when': 'length(a.postcode_key) > 4 and left(a.postcode_key, length(a.postcode_key) - 3) = left(b.postcode_key, length(b.postcode_key) - 3)', 'm_prior': 0.04, 'u_prior': 0.005},
        {'level': 0, 'label': 'different', 'm_prior': 0.28, 'u_prior': 0.9935}]},
    {'name': 'city', 'tf': 'city_key', 'trained_by': 'names',
     'null_when': 'a.city_key is null or b.city_key is null',
     'levels': [
        {'level': 2, 'label': 'exact', 'when': 'a.city_key = b.city_key', 'm_prior': 0.7, 'u_prior': 0.01},
        {'level': 1, 'label': 'similar', 'when': 'levenshtein(a.city_key, b.city_key) <= 2', 'm_prior': 0.05, 'u_prior': 0.002},
        {'level': 0, 'label': 'different', 'm_prior': 0.25, 'u_prior': 0.988}]},
    {'name': 'phone', 'tf': none, 'trained_by': 'names',
     'null_when': 'a.phone_key is null or b.phone_key is null',
     'levels': [
        {'level': 1, 'label': 'exact', 'when': 'a.phone_key = b.phone_key', 'm_prior': 0.7, 'u_prior': 0.00001},
        {'level': 0, 'label': 'different', 'm_prior': 0.3, 'u_prior': 0.99999}]},
    {'name': 'email', 'tf': none, 'trained_by': 'names',
     'null_when': 'a.email_normalized is null or b.email_normalized is null',
     'levels': [
        {'level': 3, 'label': 'exact', 'when': 'a.email_normalized = b.email_normalized', 'm_prior': 0.4, 'u_prior': 0.000001},
        {'level': 2, 'label': 'one_or_two_typos', 'when': 'levenshtein(a.email_normalized, b.email_normalized) <= 2', 'm_prior': 0.1, 'u_prior': 0.00001},
        {'level': 1, 'label': 'same_domain', 'when': "split_part(a.email_normalized, '@', 2) = split_part(b.email_normalized, '@', 2)", 'm_prior': 0.2, 'u_prior': 0.05},
        {'level': 0, 'label': 'different', 'm_prior': 0.3, 'u_prior': 0.949989}]},
    {'name': 'employer', 'tf': none, 'trained_by': 'names',
     'null_when': 'a.employer_domain_key is null or b.employer_domain_key is null',
     'levels': [
        {'level': 1, 'label': 'exact', 'when': 'a.employer_domain_key = b.employer_domain_key', 'm_prior': 0.6, 'u_prior': 0.01},
        {'level': 0, 'label': 'different', 'm_prior': 0.4, 'u_prior': 0.99}]},
  ]) }}
{% endmacro %}

{#- The condition that a pair agrees exactly (top level) on comparison `name`. -#}
{% macro identity_exact(name) -%}
  {%- for c in identity_comparisons() if c.name == name -%}
    g_{{ name }} = {{ c.levels[0].level }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("identity_exact: no comparison named " ~ name) }}
  {%- endfor -%}
{%- endmacro %}

{#- EM sessions: the pairs each trains on (a filter over int_identity_pairs_compared). -#}
{% macro identity_em_sessions() %}
  {{ return({
    'names': identity_exact('first_name') ~ ' and ' ~ identity_exact('last_name'),
    'birth_date': identity_exact('birth_date'),
  }) }}
{% endmacro %}

{#- Blocking keys: two records become a candidate pair when they share one. `parts` are
    joined with ':' after the key's name; a record without every `requires` column gets
    no key of that kind. Keys shared by more than var identity_block_size_cap records are
    skipped (int_identity_pairs_compared). -#}
{% macro identity_blocking_keys() %}
  {%- set dob = 'cast(birth_date as varchar)' -%}
  {{ return([
    {'name': 'name', 'parts': ['first_name_key', 'last_name_key'], 'requires': ['first_name_key', 'last_name_key']},
    {'name': 'last_dob', 'parts': ['last_name_key', dob], 'requires': ['last_name_key', 'birth_date']},
    {'name': 'first_dob', 'parts': ['first_name_key', dob], 'requires': ['first_name_key', 'birth_date']},
    {'name': 'last_postcode', 'parts': ['last_name_key', 'postcode_key'], 'requires': ['last_name_key', 'postcode_key']},
    {'name': 'first_postcode', 'parts': ['first_name_key', 'postcode_key'], 'requires': ['first_name_key', 'postcode_key']},
    {'name': 'last_city', 'parts': ['last_name_key', 'city_key'], 'requires': ['last_name_key', 'city_key']},
    {'name': 'first_city', 'parts': ['first_name_key', 'city_key'], 'requires': ['first_name_key', 'city_key']},
    {'name': 'dob_area', 'parts': [dob, 'left(postcode_key, 3)'], 'requires': ['birth_date', 'postcode_key']},
    {'name': 'dob_first_initial', 'parts': [dob, 'substr(first_name_key, 1, 1)'], 'requires': ['birth_date', 'first_name_key']},
    {'name': 'dob_last_initial', 'parts': [dob, 'substr(last_name_key, 1, 1)'], 'requires': ['birth_date', 'last_name_key']},
    {'name': 'name_prefixes_year', 'parts': ['substr(first_name_key, 1, 2)', 'substr(last_name_key, 1, 2)', 'cast(extract(year from birth_date) as varchar)'], 'requires': ['first_name_key', 'last_name_key', 'birth_date']},
    {'name': 'phone', 'parts': ['phone_key'], 'requires': ['phone_key']},
    {'name': 'email_local', 'parts': ["split_part(email_normalized, '@', 1)"], 'requires': ['email_normalized']},
    {'name': 'employer', 'parts': ['employer_domain_key', 'substr(last_name_key, 1, 3)'], 'requires': ['employer_domain_key', 'last_name_key']},
  ]) }}
{% endmacro %}

{#- One column per comparison: g_<name>, the level of the pair (a, b). -#}
{% macro identity_comparison_levels() -%}
  {%- for c in identity_comparisons() %}
        case
            when {{ c.null_when }} then -1
            {%- for lv in c.levels if lv.when is defined %}
            when {{ lv.when }} then {{ lv.level }}
            {%- endfor %}
            else 0
        end as g_{{ c.name }}{% if not loop.last %},{% endif %}
  {%- endfor %}
{%- endmacro %}

{#- Every (comparison, level) with its label and priors, as rows. -#}
{% macro identity_level_priors() -%}
  {%- for c in identity_comparisons() %}
    {%- set last_comparison = loop.last %}
    {%- for lv in c.levels %}
    select
        '{{ c.name }}' as comparison,
        {{ lv.level }} as level,
        '{{ lv.label }}' as level_label,
        cast({{ lv.m_prior }} as double precision) as m_prior,
        cast({{ lv.u_prior }} as double precision) as u_prior,
        '{{ c.trained_by }}' as trained_by
    {% if not (loop.last and last_comparison) %}union all{% endif %}
    {%- endfor %}
  {%- endfor %}
{%- endmacro %}

{#- A digest of the comparison, prior and blocking definitions above. The incremental
    identity models keep it with what they computed, so that editing a definition makes the
    next run compute again instead of keeping results of the old one. -#}
{% macro identity_definitions_digest() -%}
  {%- set text = identity_comparison_levels() ~ identity_level_priors() ~ (identity_blocking_keys() | string) -%}
  {%- if local_md5 is defined -%}{{ local_md5(text) }}{%- else -%}lint{%- endif -%}
{%- endmacro %}
