"""customer_flows: triggered flows (cart abandonment, welcome series, ...) within a minute.

Woken like ``collector_events`` by the collector's Redis wake-up (through the triggerer's
AssetWatcher) when events arrive, and by the collector's due timer (its own channel) when a
step comes due between events (30 minutes after a cart); a fallback schedule runs it every
minute in case a wake-up is lost (Redis pub/sub keeps nothing). Each run reads the collector's new facts, enters
and exits customers, renders the due steps with the send-time overlay and exports them in
small batches through the flows' exactly-once ledger.

It never opens the DuckDB warehouse (one writer at a time, held for minutes by the daily
build): customers come from the profile snapshot the daily DAG publishes after its gate,
events from the fresh-facts store, and flow state lives in its own SQLite file. So the
daily build never waits for flows, and flows never wait for the build.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from profilecast.config import FLOWS_DAG_ID, flows_fallback_cron
from profilecast.wake_asset import DUE_ASSET, FLOW_SENDS_ASSET, WAKE_ASSET


@dag(
    dag_id=FLOWS_DAG_ID,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(flows_fallback_cron(), timezone="UTC"),
        assets=WAKE_ASSET | DUE_ASSET,  # either wakes it
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "crm-marketing",
        "retries": 3,
        "retry_delay": timedelta(seconds=5),
        "execution_timeout": timedelta(minutes=5),
    },
    tags=["profilecast", "flows", "events"],
    doc_md=__doc__,
)
def customer_flows():
    @task(outlets=[FLOW_SENDS_ASSET])
    def advance_flows() -> dict:
        """Enter, exit and send: every flow step due by now, exported exactly once."""
        from profilecast.flows.service import advance_flows

        outcome = advance_flows()
        print("PROFILECAST_FLOWS", outcome)
        return {k: outcome[k] for k in ("now", "entered", "exited", "sent", "batches")}

    advance_flows()


customer_flows()
