"""The collector's wake-up as an Airflow Asset, shared by the DAGs it wakes.

The collector publishes on a Redis channel after it commits events; the triggerer's
AssetWatcher (the Redis provider's message-queue trigger) turns each message into an asset
event. Imported by DAG files only (it needs Airflow and its providers).
"""

from __future__ import annotations

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import Asset, AssetWatcher

from profilecast.config import REDIS_CONN_ID, due_channel, wake_channel


def _redis_asset(uri: str, watcher: str, channel: str) -> Asset:
    """An Asset whose events are messages on a Redis pub/sub channel (the triggerer listens)."""
    trigger = MessageQueueTrigger(scheme="redis+pubsub", channels=[channel],
                                  redis_conn_id=REDIS_CONN_ID, poll_interval=0.5)  # fmt: skip
    return Asset(uri, watchers=[AssetWatcher(name=watcher, trigger=trigger)])


#: The collector took events: wakes collector_events and customer_flows.
WAKE_ASSET = _redis_asset("profilecast://collector/wake", "collector_wake", wake_channel())
#: A flow step has come due (the collector's due timer): wakes customer_flows alone.
DUE_ASSET = _redis_asset("profilecast://flows/due", "flows_due", due_channel())
FRESH_ASSET = Asset("profilecast://fresh/facts")
FLOW_SENDS_ASSET = Asset("profilecast://flows/sends")
