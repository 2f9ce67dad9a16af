"""Advance triggered flows: enter, exit, send due steps, export them exactly once.

One ``advance`` reads the facts the collector stored since its cursor, resolves each to a
customer through the published profile snapshot (never the DuckDB warehouse, so it does not
wait for the daily build and the build does not wait for it), enters and exits flows, then
renders every step that is due with the send-time overlay and exports the messages in small
batches. A batch is claimed first (its bytes, its ledger rows and the state moves commit in
one SQLite transaction), then written to the export target and marked committed; a crash in
between rewrites the same bytes under the same name on the next advance, so nothing is sent
twice and nothing claimed is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from profilecast.campaigns.templates import CompiledCampaign, clean_value
from profilecast.collector.profiles import ProfileReader
from profilecast.experiments.definition import HOLDOUT
from profilecast.flows.definition import Flow
from profilecast.flows.entries import Entry, order_number, scan_snapshot
from profilecast.flows.outbox import HOLDOUT_NOTE, Outbox, Pending
from profilecast.flows.permission import current_regimes, may_not_mail, preference_wait
from profilecast.flows.store import FlowStore, State
from profilecast.flows.timing import due_after, quiet_until, zone
from profilecast.fresh.facts import SUPPRESSING
from profilecast.fresh.overlay import Overlay
from profilecast.fresh.store import FreshStore, StoredFact
from profilecast.sources.validation import format_timestamp, parse_timestamp

log = logging.getLogger(__name__)


def flow_message_key(flow_id: str, subject: str, entry_seq: int, step_id: str) -> str:
    """Deterministic per (flow, customer, entry, step): the exactly-once key."""
    raw = f"flow|{flow_id}|{subject}|{entry_seq}|{step_id}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass
class Outcome:
    entered: int = 0
    exited: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    deferred: int = 0
    completed: int = 0
    facts: int = 0
    batches: list[str] = field(default_factory=list)
    recovered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "facts_read": self.facts, "entered": self.entered, "exited": self.exited,
            "sent": self.sent, "skipped_steps": self.skipped, "deferred": self.deferred,
            "completed": self.completed, "batches": self.batches,
            "recovered_batches": self.recovered,
        }  # fmt: skip


class FlowEngine:
    def __init__(
        self,
        flows: list[Flow],
        store: FlowStore,
        reader: ProfileReader,
        fresh: FreshStore | None,
        target: Any,
        links: tuple[Any, str],
        sources: Any = None,
    ) -> None:
        self.flows = {f.flow_id: f for f in flows}
        self.store = store
        self.reader = reader
        self.fresh = fresh
        self.target = target
        self.tokens, self.base_url = links
        self._compiled: dict[str, CompiledCampaign] = {}
        self.suppressions: Any = None  # consent.suppressions.Suppressions, set by advance
        self.regimes = current_regimes()
        self.outbox = Outbox(self.flows, store, target, sources)

    # -- identity --------------------------------------------------------------------------
    def resolve(self, fact: StoredFact) -> tuple[str, str | None]:
        """(subject, customer_id): the built customer when the snapshot knows the identifier."""
        id_kind, identifier = fact.id_kind, fact.identifier
        cid = self.reader.customer_for(id_kind, identifier)
        if cid is None and id_kind == "web_anonymous" and self.fresh is not None:
            user = self.fresh.links([identifier]).get(identifier)
            if user:
                cid = self.reader.customer_for("web_user", user)
                id_kind, identifier = "web_user", user
        if cid is None and fact.props.get("email"):
            cid = self.reader.customer_for("email", str(fact.props["email"]).lower())
        return (cid, cid) if cid else (f"{id_kind}:{identifier}", None)

    # -- the run -----------------------------------------------------------------------------
    def advance(self, now: datetime) -> Outcome:
        from profilecast.consent.suppressions import current_suppressions

        out = Outcome()
        if self.suppressions is None:
            self.suppressions = current_suppressions()
        with self.store.exclusive():
            out.recovered = self.outbox.recover(now)
            self._read_facts(now, out)
            scan_snapshot(self, now, out)
            pending = self._due(now, out)
            self.outbox.export(pending, now, out)
            self.outbox.log_holdouts(now)
        return out

    def _read_facts(self, now: datetime, out: Outcome) -> None:
        if self.fresh is None:
            return
        stamp = format_timestamp(now)
        cursor = int(self.store.meta("fact_cursor", "0") or 0)
        while True:
            batch = self.fresh.facts_after(cursor, limit=5000)
            if not batch:
                return
            with self.store.conn:
                for position, fact in batch:
                    self._on_fact(fact, stamp, out)
                    cursor = position
                self.store.set_meta("fact_cursor", str(cursor))
            out.facts += len(batch)

    def _exit(self, s: State, reason: str, stamp: str, out: Outcome) -> None:
        step = self.flows[s.flow_id].steps[s.step_index].step_id if (
            s.flow_id in self.flows and s.step_index < len(self.flows[s.flow_id].steps)) else None  # fmt: skip
        ended = replace(s, status="exited", exit_reason=reason, next_due_at=None)
        self.store.save(ended, stamp)
        self.store.history(ended, stamp, step, "exited", reason)
        out.exited[reason] = out.exited.get(reason, 0) + 1

    def _on_fact(self, fact: StoredFact, stamp: str, out: Outcome) -> None:
        subject, cid = self.resolve(fact)
        scope = SUPPRESSING.get(fact.kind)
        for s in self.store.active_for(subject):
            flow = self.flows.get(s.flow_id)
            if flow is None:
                continue
            on = fact.props.get("topic")
            if scope == "all" or (
                scope == "marketing" and flow.kind == "marketing" and on in (None, flow.topic)
            ):
                self._exit(s, fact.kind if on is None else f"{fact.kind} from {on}", stamp, out)
            elif fact.kind in flow.exit_on and fact.occurred_at >= s.entered_at:
                self._exit(s, fact.kind, stamp, out)
        for flow in self.flows.values():
            if fact.kind in flow.entry_events:
                self._maybe_enter(flow, fact, subject, cid, stamp, out)

    def _maybe_enter(self, flow: Flow, fact: StoredFact, subject: str, cid: str | None,
                     stamp: str, out: Outcome) -> None:  # fmt: skip
        email = str(fact.props.get("email") or "").strip().lower() or None
        if flow.new_email_only and fact.kind == "identified":
            if (
                not email
                or self.reader.customer_for("email", email)
                or self.store.known_email(email, flow.flow_id)
            ):
                return
        values = {**fact.props, "products": ", ".join(fact.products)}
        self.enter(flow, Entry(subject, cid, email, fact.occurred_at, fact.kind, values,
                               fact.event_id), stamp, out)  # fmt: skip

    def enter(self, flow: Flow, e: Entry, stamp: str, out: Outcome) -> bool:
        """Enter ``e`` into ``flow`` unless the re-entry rule, the entry's property
        conditions or the flow's profile conditions say no."""
        existing = self.store.state(flow.flow_id, e.subject)
        if existing is not None:
            if existing.status == "active" or flow.reentry_days is None:
                return False
            if _ts(e.occurred_at) - _ts(existing.entered_at) < timedelta(days=flow.reentry_days):
                return False
        profile = self._profile(e.subject, e.customer_id, e.email, e.values)
        values = {**e.values, **order_number(e, profile)}
        if flow.entry_where is not None and not flow.entry_where.test(values, _ts(stamp)):
            return False
        if flow.profile is not None and not flow.profile.test(profile, _ts(stamp)):
            return False
        if any(step.delay.reorder for step in flow.steps):
            values["reorder_days"] = self.reader.reorder_days(_split(values.get("products")))
            if values["reorder_days"] is None:
                return False  # no product with a known re-order interval
        due = due_after(_ts(e.occurred_at), flow.steps[0].delay, zone(profile.get("time_zone")),
                        values.get("reorder_days"))  # fmt: skip
        s = State(flow.flow_id, e.subject, e.customer_id, e.email or profile.get("email"),
                  (existing.entry_seq + 1) if existing else 1, e.occurred_at, 0,
                  format_timestamp(due), "active")  # fmt: skip
        self.store.save(s, stamp, e.event_id, json.dumps(values, default=str))
        self.store.history(s, stamp, None, "entered", f"{e.label} at {e.occurred_at}")
        out.entered += 1
        return True

    def _profile(self, subject: str, cid: str | None, email: str | None,
                 props: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """The published profile with fresh facts on top; for someone the build does not
        know yet, what their events said (identify traits) and their own facts."""
        profile = _named({k: v for k, v in props.items() if v not in (None, "")})
        built = self.reader.profile(cid, all_fields=True) if cid else None
        if built is not None:
            profile.update({k: v for k, v in built.items() if v not in (None, "")})
        elif self.fresh is not None and ":" in subject:
            id_kind, identifier = subject.split(":", 1)
            ids = [(id_kind, identifier)]
            if id_kind == "web_user":
                ids += [("web_anonymous", a) for a in self.fresh.anonymous_ids_of([identifier])]
            if email:
                ids.append(("email", email))
            overlay = Overlay(self.fresh.facts_for(ids, "0000"))
            for f in sorted(overlay.facts, key=lambda f: f.occurred_at):
                if f.kind in ("identified", "signup"):  # what they told us about themselves
                    traits = {k: v for k, v in f.props.items() if v not in (None, "")}
                    profile = {**_named(traits), **profile}
                    email = email or traits.get("email")
            profile.update(overlay.fields(profile))
            profile["last_purchase_since_build"] = overlay.last("purchase")
            profile["purchases_since_build"] = overlay.count_after("purchase", None)
            profile["suppressed_by"] = overlay.suppression("marketing") or overlay.suppression(
                "transactional"
            )
            profile["unsubscribed_topics"] = overlay.unsubscribed_topics(
                sorted({f.topic for f in self.flows.values()})
            )
            profile["freshness"] = {"profile_as_of": None, "fresh_facts_as_of": overlay.fresh_as_of}
        if email and not profile.get("email"):
            profile["email"] = email
        return profile

    def _due(self, now: datetime, out: Outcome) -> list[Pending]:
        stamp = format_timestamp(now)
        pending: list[Pending] = []
        for s in self.store.due(stamp):
            with self.store.conn:
                item = self._step(s, now, stamp, out)
            if item is not None:
                pending.append(item)
        return pending

    def _step(self, s: State, now: datetime, stamp: str, out: Outcome) -> Pending | None:
        flow = self.flows.get(s.flow_id)
        if flow is None:
            self._exit(s, "flow removed", stamp, out)
            return None
        props = self.store.entry_props(flow.flow_id, s.subject)
        profile = self._profile(s.subject, s.customer_id, s.email, props)
        email = profile.get("email") or s.email
        why = may_not_mail(flow, profile, email, self.suppressions, self.regimes)
        if why:
            self._exit(s, why, stamp, out)
            return None
        tz = zone(profile.get("time_zone"))
        held = (self._campaign_wait(flow, s, now) or self._frequency_wait(flow, s, now)
                or preference_wait(flow, s, profile, now, self.store))  # fmt: skip
        if held is not None:
            self._defer(s, held[0], stamp, held[1], out)
            return None
        while s.step_index < len(flow.steps):
            step = flow.steps[s.step_index]
            wait = quiet_until(now, flow.quiet_hours, tz)
            if wait is not None:
                self._defer(s, wait, stamp, f"quiet hours until {format_timestamp(wait)}", out)
                return None
            skip = (f"not {step.when.describe()}" if step.when is not None
                    and not step.when.test(profile, now) else self._holdout(flow, step, s, stamp))  # fmt: skip
            if skip:
                self.store.history(s, stamp, step.step_id, "skipped", skip)
                out.skipped += 1
                s = self._after_step(flow, s, now, tz)
                self.store.save(s, stamp)
                if s.status != "active" or (s.next_due_at or "") > stamp:
                    if s.status == "completed":
                        self.store.history(s, stamp, None, "completed")
                        out.completed += 1
                    return None
                continue
            key = flow_message_key(flow.flow_id, s.subject, s.entry_seq, step.step_id)
            after = self._after_step(flow, replace(s, email=email), now, tz)
            if self.store.sent(key):  # claimed by an earlier advance: only move on
                self.store.save(after, stamp)
                return None
            return Pending(self._render(flow, step, s, profile, email, key), s, after, step.step_id)
        self.store.save(replace(s, status="completed", next_due_at=None), stamp)
        return None

    def _holdout(self, flow: Flow, step: Any, s: State, stamp: str) -> str | None:
        """When the customer is in the holdout of the step's experiment: the step is not
        sent and the flow moves on; the history row it leaves goes to the message log
        (:meth:`Outbox.log_holdouts`)."""
        compiled = self._compiled.get(step.message.campaign_id) or CompiledCampaign(step.message)
        self._compiled[step.message.campaign_id] = compiled
        if compiled.arm(s.customer_id or s.subject) != HOLDOUT:
            return None
        return f"{HOLDOUT_NOTE}{compiled.experiment.experiment_id}"

    def _defer(self, s: State, until: datetime, stamp: str, why: str, out: Outcome) -> None:
        """Hold the current step until ``until``, with the reason in the history."""
        flow = self.flows[s.flow_id]
        held = replace(s, next_due_at=format_timestamp(until))
        self.store.save(held, stamp)
        self.store.history(held, stamp, flow.steps[s.step_index].step_id, "deferred", why)
        out.deferred += 1

    def _campaign_wait(self, flow: Flow, s: State, now: datetime) -> tuple[datetime, str] | None:
        """Tomorrow, when a daily campaign that outranks this marketing flow emailed the
        customer today (one marketing email a day, priority decides)."""
        if flow.kind != "marketing" or not s.customer_id:
            return None
        today = now.astimezone(UTC).date()
        contact = self.store.campaign_contact(s.customer_id, today.isoformat())
        if contact is None or contact[1] < flow.priority:
            return None
        tomorrow = datetime.combine(today + timedelta(days=1), dtime(0), UTC)
        return tomorrow, (f"emailed today by campaign {contact[0]} "
                          f"(priority {contact[1]} >= {flow.priority})")  # fmt: skip

    def _frequency_wait(self, flow: Flow, s: State, now: datetime) -> tuple[datetime, str] | None:
        """When the flow's frequency cap lets this customer have another marketing email,
        or None when it already does."""
        if flow.frequency is None or flow.kind != "marketing":
            return None
        limit, days = flow.frequency
        sent = self.store.marketing_sends_since(
            s.subject, format_timestamp(now - timedelta(days=days))
        )
        if len(sent) < limit:
            return None
        until = _ts(sent[len(sent) - limit]) + timedelta(days=days)
        return until, f"frequency cap: {limit} marketing flow emails in {days} days"

    def _after_step(self, flow: Flow, s: State, now: datetime, tz: ZoneInfo) -> State:
        nxt = s.step_index + 1
        if nxt >= len(flow.steps):
            return replace(s, step_index=nxt, status="completed", next_due_at=None)
        reorder = self.store.entry_props(flow.flow_id, s.subject).get("reorder_days") if (
            flow.steps[nxt].delay.reorder) else None  # fmt: skip
        due = due_after(now, flow.steps[nxt].delay, tz, reorder)
        return replace(s, step_index=nxt, next_due_at=format_timestamp(due))

    def _render(self, flow: Flow, step: Any, s: State, profile: dict[str, Any], email: str,
                key: str) -> dict[str, Any]:  # fmt: skip
        from profilecast.consent.links import add_footer, unsubscribe_headers
        from profilecast.export.batches import SCHEMA_VERSION

        message = step.message
        compiled = self._compiled.get(message.campaign_id)
        if compiled is None:
            compiled = self._compiled[message.campaign_id] = CompiledCampaign(message)
        content = compiled.render(profile, key)
        freshness = profile.get("freshness") or {}
        msg = {
            "message_key": key,
            "campaign_id": flow.flow_id,
            "flow_step": step.step_id,
            "customer_id": s.customer_id or s.subject,
            "to": email,
            "from": message.from_address,
            **content,
            "fields": {f: clean_value(profile.get(f)) for f in compiled.fields},
            "freshness": freshness,
            "schema_version": SCHEMA_VERSION,
        }
        issued = (s.next_due_at or format_timestamp(datetime.now(UTC)))[:10]  # the due day
        msg["headers"] = unsubscribe_headers(msg, flow.topic, self.tokens, self.base_url, issued)
        add_footer(msg, self.tokens, self.base_url, issued)
        return msg


def _split(value: Any) -> list[str]:
    return [p.strip() for p in str(value or "").split(",") if p.strip()]


def _named(traits: dict[str, Any]) -> dict[str, Any]:
    """Segment's trait spellings (firstName, name) as the profile's first_name."""
    if "first_name" not in traits:
        for key in ("firstName", "name"):
            if traits.get(key):
                return {**traits, "first_name": str(traits[key]).split()[0]}
    return traits


def _ts(value: str) -> datetime:
    ts = parse_timestamp(value)
    if ts is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return ts
