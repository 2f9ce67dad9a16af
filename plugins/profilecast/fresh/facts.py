"""Facts from events: pure functions from one collected event to what it tells a render."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from profilecast.sources.validation import format_timestamp, parse_timestamp

#: Segment e-commerce events and the fact each one is.
WEB_FACTS = {
    "order completed": "purchase",
    "product added": "cart_add",
    "product removed": "cart_remove",
    "product viewed": "view",
    "unsubscribed": "unsubscribe",
    "signed up": "signup",
}

#: Event properties (and identify traits) a fact keeps for flow conditions and templates:
#: small scalars only, so a fact stays a few hundred bytes.
KEPT_PROPERTIES = 24
_MAX_VALUE = 200

#: ESP events (SendGrid's names; SES's are mapped onto them) and the fact each one is.
ESP_FACTS = {
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "group_resubscribe": "resubscribe",
    "spamreport": "complaint",
    "bounce": "bounce",
    "preference": "preference",
}

#: Facts that stop mail: an unsubscribe stops marketing, the others stop everything.
SUPPRESSING = {"unsubscribe": "marketing", "complaint": "all", "bounce": "all"}


@dataclass(frozen=True)
class Fact:
    event_id: str
    kind: str
    id_kind: str  # web_user, web_anonymous or email
    identifier: str
    occurred_at: str
    products: tuple[str, ...] = ()
    #: the event's scalar properties (identify traits for a sign-up), as JSON-able values
    props: tuple[tuple[str, Any], ...] = ()

    def row(self, received_at: str) -> tuple[Any, ...]:
        return (self.event_id, self.kind, self.id_kind, self.identifier, self.occurred_at,
                json.dumps(list(self.products)), received_at,
                json.dumps(dict(self.props), default=str))  # fmt: skip


def scalar_props(props: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The first few scalar properties, strings cut short: what a flow may test or print."""
    kept = []
    for key, value in props.items():
        if len(kept) >= KEPT_PROPERTIES:
            break
        if isinstance(value, bool | int | float) or value is None:
            kept.append((str(key), value))
        elif isinstance(value, str):
            kept.append((str(key), value[:_MAX_VALUE]))
    return tuple(kept)


def _event_id(record: dict[str, Any], *keys: str) -> str:
    for key in keys:
        if record.get(key):
            return str(record[key])
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    return f"h_{digest[:24]}"


def _when(record: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        ts = parse_timestamp(record.get(key))
        if ts is not None:
            return format_timestamp(ts)
    return None


def _products(props: dict[str, Any]) -> tuple[str, ...]:
    items = props.get("products") if isinstance(props.get("products"), list) else [props]
    names = []
    for item in items:
        if isinstance(item, dict):
            name = item.get("name") or item.get("product_id") or item.get("sku")
            if name:
                names.append(str(name))
    return tuple(names)


def _identity(record: dict[str, Any]) -> tuple[str, str]:
    if record.get("userId"):
        return "web_user", str(record["userId"])
    return "web_anonymous", str(record.get("anonymousId"))


def facts_from_web(record: dict[str, Any]) -> list[Fact]:
    """The facts in one accepted Segment call: e-commerce and sign-up track events, and an
    identify that carries an email (``identified``: flows decide whether it is new)."""
    when = _when(record, "timestamp", "receivedAt")
    if when is None:
        return []
    if record.get("type") == "identify":
        traits = record.get("traits") if isinstance(record.get("traits"), dict) else {}
        email = str(traits.get("email") or "").strip().lower()
        if not email or "@" not in email:
            return []
        id_kind, identifier = _identity(record)
        props = scalar_props({**traits, "email": email})
        return [Fact(_event_id(record, "messageId"), "identified", id_kind, identifier, when,
                     (), props)]  # fmt: skip
    if record.get("type") != "track":
        return []
    kind = WEB_FACTS.get(str(record.get("event") or "").strip().lower())
    if kind is None:
        return []
    id_kind, identifier = _identity(record)
    props = record.get("properties") if isinstance(record.get("properties"), dict) else {}
    if kind == "signup" and isinstance(record.get("context"), dict):
        traits = record["context"].get("traits")
        if isinstance(traits, dict):
            props = {**traits, **props}
    return [Fact(_event_id(record, "messageId"), kind, id_kind, identifier, when,
                 _products(props), scalar_props(props))]  # fmt: skip


def links_from_web(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``(anonymous_id, user_id)`` pairs an identify, alias or any call with both ids makes."""
    user = record.get("userId")
    if not user:
        return []
    links = []
    if record.get("anonymousId"):
        links.append((str(record["anonymousId"]), str(user)))
    if record.get("type") == "alias" and record.get("previousId"):
        links.append((str(record["previousId"]), str(user)))
    return links


def facts_from_esp(record: dict[str, Any]) -> list[Fact]:
    """The facts in one ESP event (SendGrid's shape; SES notifications arrive mapped)."""
    event = str(record.get("event") or "").strip().lower()
    kind = ESP_FACTS.get(event)
    if event == "dropped" and "bounce" in str(record.get("reason") or "").lower():
        kind = "bounce"
    email = str(record.get("email") or "").strip().lower()
    when = _when(record, "timestamp")
    if kind is None or not email or when is None:
        return []
    props: tuple[tuple[str, Any], ...] = ()
    if event in ("group_unsubscribe", "group_resubscribe") or record.get("topic"):
        topic = record.get("topic") or _topic_of_group(record.get("asm_group_id"))
        props = (("topic", str(topic) if topic else None),)
    if event == "preference":
        props = (("frequency", str(record.get("frequency") or "all")),)
    return [Fact(_event_id(record, "sg_event_id"), kind, "email", email, when, (), props)]


def _topic_of_group(group: Any) -> str | None:
    """The consent topic of a SendGrid unsubscribe group (consent/topics.yml)."""
    if group is None:
        return None
    from profilecast.config import topics_path
    from profilecast.consent.topics import load_topics, topic_for_group

    return topic_for_group(load_topics(topics_path()), group)
