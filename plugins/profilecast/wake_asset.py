"""The collector's wake-up as an Airflow Asset, shared by the DAGs it wakes.

The collector publishes on a Redis channel after it commits events; the triggerer's
AssetWatcher (the Redis provider's message-queue trigger) turns each message into an asset
event. Imported by DAG files only (it needs Airflow and its providers).
"""

from __future__ import annotations

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import Asset, AssetWatcher

from profilecast.config import REDIS_CONN_ID, due_channel, wake_channel

WAKE_ASSET = Asset(
    "profilecast://collector/wake",
    watchers=[
        AssetWatcher(
            name="collector_wake",
            trigger=MessageQueueTrigger(
                scheme="redis+pubsub",
                channels=[wake_channel()],
                redis_conn_id=REDIS_CONN_ID,
                poll_interval=0.5,
            ),
        )
    ],
)
#: A flow step has come due (the collector's due timer): wakes customer_flows alone.
DUE_ASSET = Asset(
    "profilecast://flows/due",
    watchers=[
        AssetWatcher(
            name="flows_due",
            trigger=MessageQueueTrigger(
                scheme="redis+pubsub",
                channels=[due_channel()],
                redis_conn_id=REDIS_CONN_ID,
                poll_interval=0.5,
            ),
        )
    ],
)
FRESH_ASSET = Asset("profilecast://fresh/facts")
FLOW_SENDS_ASSET = Asset("profilecast://flows/sends")
