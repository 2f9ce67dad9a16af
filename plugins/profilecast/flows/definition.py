"""Flow definitions: ``flows/<flow_id>.yml``, loaded and checked with file, line and field.

A flow is entered on an event (a fresh fact kind, with optional property conditions) and
optional profile conditions; it walks its steps (delay, optional condition, message) and
ends early on its exit events or on any suppression. Messages are folders under
``flows/messages/`` shaped like campaign folders (same sandbox, same field allow-list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from profilecast.campaigns.definition import Campaign, CampaignError, load_campaign
from profilecast.flows.conditions import Condition, ConditionError, parse_condition

#: The events a flow may be entered on or exit on (fresh fact kinds, see profilecast.fresh).
ENTRY_EVENTS = {"cart_add", "cart_remove", "view", "purchase", "signup", "identified"}
EXIT_EVENTS = {"cart_add", "cart_remove", "view", "purchase", "signup"}
DELAY_UNITS = {"minutes", "hours", "days"}
FLOW_KEYS = {
    "flow_id", "description", "kind", "topic", "priority", "entry", "profile", "reentry",
    "exit_on", "quiet_hours", "steps", "frequency",
}  # fmt: skip
STEP_KEYS = {"id", "delay", "when", "message"}
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class FlowError(ValueError):
    """A flow file is invalid; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Delay:
    """Wait this long after the previous step (or the entry); with ``at_local_hour``, then
    on to the next time the customer's clock shows that hour."""

    after: timedelta = timedelta(0)
    at_local_hour: int | None = None
    #: replenishment: wait the entry products' re-order interval (less ``after``)
    reorder: bool = False


@dataclass
class Step:
    step_id: str
    delay: Delay
    message: Campaign
    when: Condition | None = None


@dataclass
class Flow:
    flow_id: str
    kind: str
    topic: str
    priority: int
    entry_events: tuple[str, ...]
    steps: list[Step]
    #: entered when a published build puts the customer in this segment (a new stay)
    entry_segment: str | None = None
    #: entered every year on the date this profile field holds (e.g. first_order_at)
    entry_anniversary: str | None = None
    entry_where: Condition | None = None
    #: an ``identified`` entry only counts when the address is not one the warehouse or a
    #: flow knows yet (other entry events are not affected)
    new_email_only: bool = False
    profile: Condition | None = None
    #: None: never again; 0: whenever not active; N: N days after the last entry
    reentry_days: int | None = None
    exit_on: list[str] = field(default_factory=list)
    quiet_hours: tuple[time, time] | None = None
    #: at most this many marketing flow messages per customer in this many days (any flow)
    frequency: tuple[int, int] | None = None
    description: str = ""
    path: Path | None = None


class _Lined(dict):
    """A YAML mapping that remembers the line of each key (1-based)."""

    line: int = 0
    lines: dict[str, int]


def _yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader: Any, node: Any) -> _Lined:
        out = _Lined()
        out.line = node.start_mark.line + 1
        out.lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            out[key] = loader.construct_object(value_node, deep=True)
            out.lines[str(key)] = key_node.start_mark.line + 1
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)
    return Loader


class _Where:
    """Error positions inside one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, node: Any, key: str, msg: str, prefix: str = "") -> FlowError:
        line = getattr(node, "lines", {}).get(key) or getattr(node, "line", 0)
        return FlowError(f"{self.path}:{line}: {prefix}{key}: {msg}")


def _delay(raw: Any, where: _Where, step: Any, label: str) -> Delay:
    if raw is None:
        return Delay()
    if not isinstance(raw, dict) or not raw:
        raise where.error(
            step, "delay", "give minutes, hours or days (and/or at_local_hour)", label
        )
    unknown = sorted(set(raw) - DELAY_UNITS - {"at_local_hour", "reorder_interval", "days_before"})
    if unknown:
        raise where.error(step, "delay", f"unknown unit(s) {unknown}", label)
    total = timedelta(0)
    for unit in DELAY_UNITS & set(raw):
        value = raw[unit]
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise where.error(step, "delay", f"{unit} must be a number >= 0", label)
        total += timedelta(**{unit: value})
    reorder = raw.get("reorder_interval", False)
    if not isinstance(reorder, bool) or ("days_before" in raw and not reorder):
        raise where.error(step, "delay", "reorder_interval: true (days_before only with it)", label)
    before = raw.get("days_before", 0)
    if not isinstance(before, int | float) or isinstance(before, bool) or before < 0:
        raise where.error(step, "delay", "days_before must be a number >= 0", label)
    if reorder:
        total = timedelta(days=before)
    hour = raw.get("at_local_hour")
    if hour is not None and (not isinstance(hour, int) or not 0 <= hour <= 23):
        raise where.error(step, "delay", "at_local_hour must be an hour 0-23", label)
    return Delay(total, hour, reorder)


def _condition(raw: Any, where: _Where, node: Any, key: str, subject: str, label: str = ""):
    if raw is None:
        return None
    try:
        return parse_condition(raw, subject)
    except ConditionError as exc:
        raise where.error(node, key, str(exc), label) from None


def _message(name: Any, messages_dir: Path, where: _Where, step: Any, label: str) -> Campaign:
    if not isinstance(name, str) or not name:
        raise where.error(step, "message", "name a folder under flows/messages/", label)
    cfg = messages_dir / name / "campaign.yml"
    if not cfg.exists():
        known = sorted(p.name for p in messages_dir.iterdir() if p.is_dir()) if (
            messages_dir.is_dir()) else []  # fmt: skip
        raise where.error(step, "message", f"no message folder {name!r} (known: {known})", label)
    try:
        return load_campaign(cfg, require_segments=False)
    except CampaignError as exc:
        raise where.error(step, "message", str(exc), label) from None


def _quiet(raw: Any, where: _Where, doc: Any) -> tuple[time, time] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"start", "end"}:
        raise where.error(
            doc, "quiet_hours", 'give start and end, e.g. {start: "21:00", end: "08:00"}'
        )
    bounds = []
    for key in ("start", "end"):
        m = _HHMM.match(str(raw[key]))
        if not m:
            raise where.error(doc, "quiet_hours", f"{key} must be HH:MM, not {raw[key]!r}")
        bounds.append(time(int(m.group(1)), int(m.group(2))))
    return bounds[0], bounds[1]


def _frequency(raw: Any, where: _Where, doc: Any) -> tuple[int, int] | None:
    if raw is None:
        return None
    ok = isinstance(raw, dict) and set(raw) == {"max_messages", "per_days"} and all(
        isinstance(raw[k], int) and not isinstance(raw[k], bool) and raw[k] > 0 for k in raw)  # fmt: skip
    if not ok:
        raise where.error(
            doc, "frequency", "use {max_messages: N, per_days: D} (positive integers)"
        )
    return raw["max_messages"], raw["per_days"]


def _reentry(raw: Any, where: _Where, doc: Any) -> int | None:
    if raw is None or raw == "never":
        return None
    if raw == "always":
        return 0
    if isinstance(raw, dict) and set(raw) == {"after_days"} and isinstance(raw["after_days"], int):
        return max(0, raw["after_days"])
    raise where.error(doc, "reentry", "use never, always or {after_days: N}")


ENTRY_KINDS = ("event", "segment", "anniversary")


def _entry(entry: Any, where: _Where, doc: Any) -> tuple[list[str], str | None, str | None]:
    """(events, segment, anniversary field): exactly one way in."""
    if not isinstance(entry, dict) or len([k for k in ENTRY_KINDS if k in entry]) != 1:
        raise where.error(doc, "entry", "give one of entry: {event: ...}, {segment: ...}, "
                                        "{anniversary: <profile date field>}")  # fmt: skip
    bad = sorted(set(entry) - {*ENTRY_KINDS, "where", "new_email"})
    if bad:
        raise where.error(entry, bad[0], "unknown field (use event, segment, anniversary, "
                                         "where, new_email)", "entry.")  # fmt: skip
    for key in ("segment", "anniversary"):
        if key in entry:
            if not isinstance(entry[key], str) or not entry[key]:
                raise where.error(
                    entry, key, "name a segment model / a profile date field", "entry."
                )
            if "new_email" in entry:
                raise where.error(entry, "new_email", "only for event entries", "entry.")
            return [], (entry[key] if key == "segment" else None), (
                entry[key] if key == "anniversary" else None)  # fmt: skip
    events = entry["event"] if isinstance(entry["event"], list) else [entry["event"]]
    wrong = [e for e in events if e not in ENTRY_EVENTS]
    if not events or wrong:
        raise where.error(
            entry, "event", f"{wrong or events} not in {sorted(ENTRY_EVENTS)}", "entry."
        )
    return events, None, None


def _steps(doc: Any, where: _Where, messages_dir: Path, kind: str) -> list[Step]:
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise where.error(doc, "steps", "a flow has at least one step")
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        label = f"steps[{i}]."
        if not isinstance(raw, dict):
            raise where.error(doc, "steps", f"step {i} must be a mapping")
        bad = sorted(set(raw) - STEP_KEYS)
        if bad:
            raise where.error(raw, bad[0], f"unknown field (use {sorted(STEP_KEYS)})", label)
        step_id = str(raw.get("id") or f"step_{i + 1}")
        if step_id in {s.step_id for s in steps}:
            raise where.error(raw, "id", f"step id {step_id!r} is used twice", label)
        message = _message(raw.get("message"), messages_dir, where, raw, label)
        if message.kind != kind:
            raise where.error(
                raw, "message", f"message kind {message.kind} != flow kind {kind}", label
            )
        steps.append(
            Step(
                step_id=step_id,
                delay=_delay(raw.get("delay"), where, raw, label),
                message=message,
                when=_condition(raw.get("when"), where, raw, "when", "field", label),
            )
        )
    return steps


def load_flow(path: Path, messages_dir: Path) -> Flow:
    """Parse and check one flow file."""
    import yaml

    where = _Where(path)
    try:
        doc = yaml.load(path.read_text(), Loader=_yaml_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise FlowError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise FlowError(f"{path}:1: a flow file is a mapping (flow_id, entry, steps, ...)")
    unknown = sorted(set(doc) - FLOW_KEYS)
    if unknown:
        raise where.error(doc, unknown[0], f"unknown field (use {sorted(FLOW_KEYS)})")
    flow_id = doc.get("flow_id") or path.stem
    if flow_id != path.stem:
        raise where.error(doc, "flow_id", f"must match the file name {path.stem!r}")
    kind = doc.get("kind", "marketing")
    if kind not in ("marketing", "transactional"):
        raise where.error(doc, "kind", "must be marketing or transactional")
    topic = doc.get("topic")
    if not isinstance(topic, str) or not topic:
        raise where.error(doc, "topic", "every flow names its consent topic")
    from profilecast.config import topics_path
    from profilecast.consent.topics import TopicError, check_topic, load_topics

    try:
        check_topic(load_topics(topics_path()), topic, kind, "flow")
    except TopicError as exc:
        raise where.error(doc, "topic", str(exc).removeprefix("flow: ")) from None
    entry = doc.get("entry")
    events, segment, anniversary = _entry(entry, where, doc)
    exit_on = doc.get("exit_on") or []
    if not isinstance(exit_on, list) or set(exit_on) - EXIT_EVENTS:
        raise where.error(doc, "exit_on", f"a list of events from {sorted(EXIT_EVENTS)}")
    priority = doc.get("priority", 50)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise where.error(doc, "priority", "must be an integer")
    steps = _steps(doc, where, messages_dir, kind)
    return Flow(
        flow_id=flow_id,
        kind=kind,
        topic=topic,
        priority=priority,
        entry_events=tuple(str(e) for e in events),
        entry_segment=segment,
        entry_anniversary=anniversary,
        entry_where=_condition(entry.get("where"), where, entry, "where", "property", "entry."),
        new_email_only=bool(entry.get("new_email", False)),
        profile=_condition(doc.get("profile"), where, doc, "profile", "field"),
        reentry_days=_reentry(doc.get("reentry"), where, doc),
        exit_on=[str(e) for e in exit_on],
        quiet_hours=_quiet(doc.get("quiet_hours"), where, doc),
        frequency=_frequency(doc.get("frequency"), where, doc),
        steps=steps,
        description=str(doc.get("description", "")),
        path=path,
    )


def load_flows(directory: Path) -> list[Flow]:
    """Every ``<flow_id>.yml`` in ``directory`` (messages under ``directory/messages``)."""
    if not directory.is_dir():
        return []
    flows = [load_flow(p, directory / "messages") for p in sorted(directory.glob("*.yml"))]
    return sorted(flows, key=lambda f: (-f.priority, f.flow_id))
