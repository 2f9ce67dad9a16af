"""The message log: one record per message profilecast sent or held out, written as a drop
of the ``sends`` source (``<sources>/sends/messages/...``). The next run loads it like any
source, and the ``campaign_results`` mart joins ESP events and orders to it by
``message_key``. Python never writes the tables dbt reads: this file is the hand-off.

Files are named after the batch they describe and their content is deterministic, so an
export retried after a crash rewrites the same file (the staging model keeps one row per
``message_key``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from profilecast.experiments.definition import HOLDOUT

COLUMNS = ("message_key", "campaign_id", "flow_step", "customer_id", "experiment_id",
           "variant", "status", "run_date", "sent_at", "send_at", "attribution_days")  # fmt: skip


class _Line(msgspec.Struct):
    """A log line: the columns in sorted order (the order its JSON keys have always had),
    encoded without building a dict (a third of the per-message cost of the old line)."""

    attribution_days: int | None
    campaign_id: Any
    customer_id: Any
    experiment_id: Any
    flow_step: Any
    message_key: Any
    run_date: Any
    send_at: Any
    sent_at: Any
    status: Any
    variant: Any


_encode = msgspec.json.Encoder().encode
assert _Line.__struct_fields__ == tuple(sorted(COLUMNS))


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


def log_line(record: dict[str, Any]) -> bytes:
    """One record as its compact JSON line (without the line break)."""
    return _encode(_Line(**{c: record.get(c) for c in COLUMNS}))


def message_line(message: dict[str, Any], run_date: str, sent_at: str,
                 attribution_days: int) -> bytes:  # fmt: skip
    """``log_line(log_record(...))`` of a message, without the record in between."""
    get = message.get
    return _encode(_Line(attribution_days, message["campaign_id"], get("customer_id"),
                         get("experiment_id") or message["campaign_id"], get("flow_step"),
                         message["message_key"], run_date, get("send_at"), sent_at,
                         HOLDOUT if get("variant") == HOLDOUT else "sent",
                         get("variant") or get("subject_variant")))  # fmt: skip


def write_log(sources: Any, rel: str, records: Iterable[dict[str, Any]]) -> int:
    """Write the records as ``sends/messages/<rel>.jsonl`` in the sources store; returns how
    many (nothing is written for none)."""
    return write_log_lines(sources, rel, [log_line(r) for r in records])


def write_log_lines(sources: Any, rel: str, lines: list[bytes]) -> int:
    """``write_log`` for records already encoded by ``log_line`` (each item one line, or
    several already joined, each ending in a line break)."""
    if not lines:
        return 0
    from profilecast.storage import Conflict

    data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    try:  # the same bytes again (a retry) leave the file as it is
        sources.write(f"sends/messages/{rel}.jsonl", data, "application/x-ndjson")
    except Conflict:
        sources.write(f"sends/messages/{rel}.jsonl", data, "application/x-ndjson", overwrite=True)
    return data.count(b"\n")
