"""How customers enter flows besides events: a build that puts them in a segment, and a
date in their profile coming round again (anniversaries, birthdays)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from profilecast.sources.validation import format_timestamp


@dataclass(frozen=True)
class Entry:
    """One candidate entry: who, when, what made it, and the values its conditions see."""

    subject: str
    customer_id: str | None
    email: str | None
    occurred_at: str
    label: str
    values: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None


def order_number(e: Entry, profile: dict[str, Any]) -> dict[str, Any]:
    """For a purchase: which order of the customer's this is (the build's count plus the
    purchases the collector saw since), for nth-order milestones."""
    if e.label != "purchase":
        return {}
    built = profile.get("orders_count")
    try:
        built_n = int(built) if built not in (None, "") else 0
    except (TypeError, ValueError):
        built_n = 0
    return {"order_number": built_n + int(profile.get("purchases_since_build") or 1)}


def scan_snapshot(engine: Any, now: datetime, out: Any) -> None:
    """Segment entries once per published build; anniversary entries once per day."""
    flows = list(engine.flows.values())
    store, reader = engine.store, engine.reader
    stamp = format_timestamp(now)
    segment_flows = [f for f in flows if f.entry_segment]
    meta = reader.meta()
    as_of, run_date = meta.get("profile_as_of"), meta.get("run_date")
    if segment_flows and as_of and run_date and store.meta("segments_as_of") != as_of:
        # Entered when the flows see the build (its segment stays began with that run).
        with store.conn:
            for flow in segment_flows:
                for cid in reader.segment_entrants(flow.entry_segment, run_date):
                    engine.enter(flow, Entry(cid, cid, None, stamp, f"segment {flow.entry_segment}"),
                                 stamp, out)  # fmt: skip
            store.set_meta("segments_as_of", as_of)
    day = now.astimezone(UTC).strftime("%Y-%m-%d")
    dated = [f for f in flows if f.entry_anniversary]
    if dated and meta.get("profile_as_of") and store.meta("anniversary_day") != day:
        with store.conn:
            for flow in dated:
                for cid, value in reader.anniversaries(flow.entry_anniversary, day[5:]):
                    years = int(day[:4]) - int(str(value)[:4])
                    if years < 1:
                        continue
                    values = {"years": years, flow.entry_anniversary: value}
                    engine.enter(flow, Entry(cid, cid, None, f"{day} 00:00:00.000000",
                                             f"{flow.entry_anniversary} anniversary", values),
                                 stamp, out)  # fmt: skip
            store.set_meta("anniversary_day", day)
