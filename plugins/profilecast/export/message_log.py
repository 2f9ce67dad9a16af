"""The message log: one record per message profilecast sent or held out, written as a drop
of the ``sends`` source (``<sources>/sends/messages/...``). The next run loads it like any
source, and the ``campaign_results`` mart joins ESP events and orders to it by
``message_key``. Python never writes the tables dbt reads: this file is the hand-off.

Files are named after the batch they describe and their content is deterministic, so an
export retried after a crash rewrites the same file (the staging model keeps one row per
``message_key``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from profilecast.experiments.definition import HOLDOUT

COLUMNS = ("message_key", "campaign_id", "flow_step", "customer_id", "experiment_id",
           "variant", "status", "run_date", "sent_at", "send_at", "attribution_days")  # fmt: skip


def log_record(message: dict[str, Any], run_date: str, sent_at: str,
               attribution_days: int) -> dict[str, Any]:  # fmt: skip
    """A rendered message (or a holdout row) as its message-log record."""
    held = message.get("variant") == HOLDOUT
    return {
        "message_key": message["message_key"],
        "campaign_id": message["campaign_id"],
        "flow_step": message.get("flow_step"),
        "customer_id": message.get("customer_id"),
        "experiment_id": message.get("experiment_id") or message["campaign_id"],
        "variant": message.get("variant") or message.get("subject_variant"),
        "status": HOLDOUT if held else "sent",
        "run_date": run_date,
        "sent_at": sent_at,
        "send_at": message.get("send_at"),
        "attribution_days": attribution_days,
    }


def write_log(sources: Any, rel: str, records: Iterable[dict[str, Any]]) -> int:
    """Write the records as ``sends/messages/<rel>.jsonl`` in the sources store; returns how
    many (nothing is written for none)."""
    lines = [json.dumps({c: r.get(c) for c in COLUMNS}, sort_keys=True) for r in records]
    if not lines:
        return 0
    from profilecast.storage import Conflict

    data = ("\n".join(lines) + "\n").encode()
    try:  # the same bytes again (a retry) leave the file as it is
        sources.write(f"sends/messages/{rel}.jsonl", data, "application/x-ndjson")
    except Conflict:
        sources.write(f"sends/messages/{rel}.jsonl", data, "application/x-ndjson", overwrite=True)
    return len(lines)
