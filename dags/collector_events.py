"""collector_events: woken within seconds when the collector has taken events.

The collector publishes a wake-up on Redis after it commits events; the triggerer's
AssetWatcher (the Redis provider's message-queue trigger) turns it into an asset event that
queues this DAG. Redis pub/sub keeps nothing, so a fallback schedule runs it anyway every
few minutes: a lost wake-up only delays. Each run reports what the collector has seen since
the build (fresh facts by kind, the customers they resolve to) and marks the fresh-facts
asset, which triggered flows consume. It only reads: the warehouse stays the daily DAG's.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from profilecast.config import EVENTS_DAG_ID, WAREHOUSE_POOL, events_fallback_cron
from profilecast.wake_asset import FRESH_ASSET, WAKE_ASSET


@dag(
    dag_id=EVENTS_DAG_ID,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(events_fallback_cron(), timezone="UTC"),
        assets=[WAKE_ASSET],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "execution_timeout": timedelta(minutes=10),
    },
    tags=["profilecast", "collector", "events"],
    doc_md=__doc__,
)
def collector_events():
    # In the warehouse pool: a DuckDB reader would stop the daily build's writer.
    @task(pool=WAREHOUSE_POOL, outlets=[FRESH_ASSET])
    def fresh_facts() -> dict:
        """What the collector has seen since the build: facts by kind, customers resolved."""
        from profilecast import pipeline

        summary = pipeline.fresh_summary()
        print("PROFILECAST_FRESH", summary)
        return summary

    fresh_facts()


collector_events()
