"""The flows' entry points for the DAG and the CLI: advance, report, explain."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from profilecast import config
from profilecast.config import Settings, load_settings


def flow_fields(flows_dir: Path) -> dict[str, set[str]]:
    """flow id -> the profile fields its conditions and messages read (published for it)."""
    from profilecast.flows import load_flows

    out: dict[str, set[str]] = {}
    for flow in load_flows(flows_dir):
        names: set[str] = set()
        for cond in [flow.profile] + [s.when for s in flow.steps]:
            names |= cond.names() if cond is not None else set()
        for step in flow.steps:
            names |= set(step.message.fields)
        if flow.entry_anniversary:
            names.add(flow.entry_anniversary)
        out[flow.flow_id] = names
    return out


def advance_flows(settings: Settings | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Move every triggered flow forward: read the collector's new facts, enter and exit
    customers, send the steps that are due and export them. Never opens the warehouse: it
    reads the published profile snapshot and the fresh-facts store."""
    from profilecast.collector.profiles import ProfileReader
    from profilecast.consent.links import link_settings
    from profilecast.flows import load_flows
    from profilecast.flows.engine import FlowEngine
    from profilecast.flows.store import FlowStore
    from profilecast.fresh import FreshStore
    from profilecast.storage import ObjectStore

    settings = settings or load_settings()
    at = now or config.now()
    flows = load_flows(settings.flows_dir)
    store = FlowStore(settings.flows_path)
    fresh = FreshStore.open_for_reading(settings.fresh_path)
    reader = ProfileReader(settings.profiles_snapshot_path, settings.fresh_path)
    try:
        engine = FlowEngine(flows, store, reader, fresh, ObjectStore(settings.export_url),
                            link_settings(), ObjectStore(settings.sources))  # fmt: skip
        outcome = engine.advance(at)
    finally:
        store.close()
        if fresh is not None:
            fresh.close()
    return {"now": at.isoformat(), "flows": [f.flow_id for f in flows], **outcome.as_dict()}


def flows_report(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Per flow and step: customers waiting there, messages sent; exits by reason."""
    from profilecast.flows import load_flows
    from profilecast.flows.store import FlowStore

    settings = settings or load_settings()
    flows = load_flows(settings.flows_dir)
    store = FlowStore.open_for_reading(settings.flows_path)
    counts, sends = ([], []) if store is None else (store.counts(), store.sends_by_step())
    if store is not None:
        store.close()
    report = []
    for flow in flows:
        waiting = {i: 0 for i in range(len(flow.steps))}
        exits: dict[str, int] = {}
        completed = 0
        for fid, status, step, reason, n in counts:
            if fid != flow.flow_id:
                continue
            if status == "active" and step in waiting:
                waiting[step] += n
            elif status == "exited":
                exits[reason] = exits.get(reason, 0) + n
            elif status == "completed":
                completed += n
        sent = {step: n for fid, step, n in sends if fid == flow.flow_id}
        report.append({
            "flow_id": flow.flow_id, "kind": flow.kind, "topic": flow.topic,
            "entry": list(flow.entry_events),
            "steps": [{"step": s.step_id, "waiting": waiting[i], "sent": sent.get(s.step_id, 0)}
                      for i, s in enumerate(flow.steps)],
            "completed": completed, "exited": exits,
        })  # fmt: skip
    return report


def explain_flows(customer_id: str, settings: Settings | None = None) -> list[str]:
    """A customer's flows: every transition, with why a step was or was not sent."""
    from profilecast.flows.store import FlowStore

    settings = settings or load_settings()
    store = FlowStore.open_for_reading(settings.flows_path)
    if store is None:
        return ["flows: none has run yet"]
    try:
        rows = store.history_of([customer_id])
    finally:
        store.close()
    if not rows:
        return [f"flows: {customer_id} has not entered any flow"]
    lines = ["flows:"]
    for flow_id, _subject, seq, at, step, transition, detail in rows:
        where = f" step {step}" if step else ""
        lines.append(f"  {at[:19]}  {flow_id} #{seq}{where}: {transition}"
                     f"{' - ' + detail if detail else ''}")  # fmt: skip
    return lines


def flow_claims_today(
    settings: Settings, now: datetime | None = None
) -> dict[str, tuple[str, int]]:
    """customer_id -> (flow, priority) for the customers a marketing flow emailed today or
    will email before midnight (UTC): the daily render leaves them to flows that outrank
    the campaign."""
    from datetime import UTC, timedelta

    from profilecast.flows import load_flows
    from profilecast.flows.store import FlowStore
    from profilecast.sources.validation import format_timestamp

    at = (now or config.now()).astimezone(UTC)
    store = FlowStore.open_for_reading(settings.flows_path)
    if store is None:
        return {}
    priority = {
        f.flow_id: f.priority for f in load_flows(settings.flows_dir) if f.kind == "marketing"
    }
    end = datetime.combine(at.date() + timedelta(days=1), datetime.min.time(), UTC)
    try:
        rows = store.flow_claims(at.strftime("%Y-%m-%d"), format_timestamp(end))
    finally:
        store.close()
    claims: dict[str, tuple[str, int]] = {}
    for cid, flow_id in rows:
        p = priority.get(flow_id)
        if p is not None and (cid not in claims or p > claims[cid][1]):
            claims[cid] = (flow_id, p)
    return claims


def record_campaign_contacts(settings: Settings, wh: Any, campaign: Any, ds: str,
                             now: datetime | None = None) -> int:  # fmt: skip
    """Tell the flows what a daily campaign sent (so a flow step defers to a campaign that
    outranks it on the same day); nothing when no flow is defined."""
    from datetime import UTC

    from profilecast.flows import load_flows
    from profilecast.flows.store import FlowStore

    if not load_flows(settings.flows_dir):
        return 0
    day = (now or config.now()).astimezone(UTC).strftime("%Y-%m-%d")
    rows = [
        (key, cid, day, campaign.campaign_id, campaign.kind, campaign.priority)
        for key, cid in wh.query(
            "select message_key, customer_id from send_ledger where campaign_id = %s "
            "and run_date = %s", (campaign.campaign_id, ds))
    ]  # fmt: skip
    store = FlowStore(settings.flows_path)
    try:
        return store.record_campaign_contacts(rows)
    finally:
        store.close()
