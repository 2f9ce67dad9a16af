-- The best local hour to email each customer, from when they open and click. Their own
-- engagement by local hour is shrunk toward their time zone's cohort (which is itself
-- shrunk toward everyone), so a customer with little history gets the cohort's hour and
-- one with a lot gets their own:
--   score(h) = own(h) + k * cohort_share(h)
--   cohort_share(h) = (zone(h) + m * global_share(h)) / (zone_total + m)
-- with k = var('send_time_customer_prior') and m = var('send_time_zone_prior') pseudo
-- events. Apple Mail Privacy Protection opens are left out (the machine, not the reader,
-- chose their hour). Only the last var('send_time_lookback_days') days count.
with

profiles as (

    select customer_id, coalesce(time_zone, 'UTC') as time_zone
    from {{ ref('customer_profiles') }}

),

engagement as (

    select
        events.customer_id,
        profiles.time_zone,
        cast(extract(hour from ((events.occurred_at at time zone 'UTC') at time zone profiles.time_zone)) as integer) as local_hour
    from {{ ref('int_esp_events_identified') }} as events
    inner join profiles on profiles.customer_id = events.customer_id
    where
        events.event_type in ('open', 'click')
        and not coalesce(events.is_machine_open, false)
        and events.occurred_at < {{ as_of() }}
        and events.occurred_at >= {{ days_before(as_of(), var('send_time_lookback_days')) }}

),

own as (

    select customer_id, local_hour, count(*) as events
    from engagement
    group by customer_id, local_hour

),

own_totals as (

    select customer_id, sum(events) as events
    from own
    group by customer_id

),

global_hours as (

    select local_hour, count(*) as events
    from engagement
    group by local_hour

),

global_share as (

    select local_hour, 1.0 * events / sum(events) over () as share
    from global_hours

),

zone_hours as (

    select time_zone, local_hour, count(*) as events
    from engagement
    group by time_zone, local_hour

),

zone_totals as (

    select time_zone, sum(events) as events
    from zone_hours
    group by time_zone

),

cohort_share as (

    select
        zones.time_zone,
        global_share.local_hour,
        (coalesce(zone_hours.events, 0) + {{ var('send_time_zone_prior') }} * global_share.share)
        / (zones.events + {{ var('send_time_zone_prior') }}) as share
    from zone_totals as zones
    cross join global_share
    left join zone_hours
        on zone_hours.time_zone = zones.time_zone and zone_hours.local_hour = global_share.local_hour

),

-- A customer with no events of their own scores every hour as their time zone's cohort
-- does: their best hour is the zone's, ranked once per zone. Only customers with events
-- are scored hour by hour.
zone_scored as (

    select
        zones.time_zone,
        global_share.local_hour,
        {{ var('send_time_customer_prior') }} * coalesce(cohort_share.share, global_share.share) as score
    from (select distinct profiles.time_zone from profiles) as zones
    cross join global_share
    left join cohort_share
        on cohort_share.time_zone = zones.time_zone and cohort_share.local_hour = global_share.local_hour

),

zone_best as (

    select distinct on (zone_scored.time_zone) zone_scored.time_zone, zone_scored.local_hour
    from zone_scored
    order by zone_scored.time_zone asc, zone_scored.score desc, zone_scored.local_hour asc

),

own_scored as (

    -- A customer's score of an hour is their own events of it plus their zone's score.
    select
        own_totals.customer_id,
        zone_scored.local_hour,
        coalesce(own.events, 0) + zone_scored.score as score
    from own_totals
    inner join profiles on profiles.customer_id = own_totals.customer_id
    inner join zone_scored on zone_scored.time_zone = profiles.time_zone
    left join own
        on own.customer_id = own_totals.customer_id and own.local_hour = zone_scored.local_hour

),

-- The best hour of each customer: the highest score, the earliest hour of a tie (distinct
-- on keeps the first row per customer; a ranking window over every hour took longer).
own_best as (

    select distinct on (own_scored.customer_id) own_scored.customer_id, own_scored.local_hour
    from own_scored
    order by own_scored.customer_id asc, own_scored.score desc, own_scored.local_hour asc

),

ranked as (

    -- Every customer's best hour: their own ranking's, else their zone's. No zone has a
    -- best hour when nobody engaged at all, and then no customer has one, as before.
    select
        profiles.customer_id,
        profiles.time_zone,
        coalesce(own_best.local_hour, zone_best.local_hour) as local_hour
    from profiles
    inner join zone_best on zone_best.time_zone = profiles.time_zone
    left join own_best on own_best.customer_id = profiles.customer_id

),

final as (

    select
        ranked.customer_id,
        ranked.time_zone,
        ranked.local_hour as best_local_hour,
        cast(coalesce(own_totals.events, 0) as integer) as engagement_events,
        case
            when coalesce(own_totals.events, 0) >= {{ var('send_time_customer_prior') }} then 'own'
            when coalesce(own_totals.events, 0) > 0 then 'own_and_cohort'
            else 'cohort'
        end as basis
    from ranked
    left join own_totals on own_totals.customer_id = ranked.customer_id

)

select * from final
