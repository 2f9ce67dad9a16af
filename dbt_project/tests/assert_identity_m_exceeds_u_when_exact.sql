-- Fails when the estimated parameters say an exact agreement is no evidence of a match
-- (m <= u at a comparison's top level): expectation maximisation has degenerated.
with

m as (

    select * from {{ ref('int_identity_m_probabilities') }}

),

u as (

    select * from {{ ref('int_identity_u_probabilities') }}

)

select m.comparison, m.level, m.m_probability, u.u_probability
from m
inner join u on u.comparison = m.comparison and u.level = m.level
where m.level_label = 'exact' and m.m_probability <= u.u_probability
