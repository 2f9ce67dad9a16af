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
}

#: ESP events (SendGrid's names; SES's are mapped onto them) and the fact each one is.
ESP_FACTS = {
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "spamreport": "complaint",
    "bounce": "bounce",
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

    def row(self, received_at: str) -> tuple[Any, ...]:
        return (self.event_id, self.kind, self.id_kind, self.identifier, self.occurred_at,
                json.dumps(list(self.products)), received_at)  # fmt: skip


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


def facts_from_web(record: dict[str, Any]) -> list[Fact]:
    """The facts in one accepted Segment call (track events only; others carry none)."""
    if record.get("type") != "track":
        return []
    kind = WEB_FACTS.get(str(record.get("event") or "").strip().lower())
    when = _when(record, "timestamp", "receivedAt")
    if kind is None or when is None:
        return []
    if record.get("userId"):
        id_kind, identifier = "web_user", str(record["userId"])
    else:
        id_kind, identifier = "web_anonymous", str(record.get("anonymousId"))
    props = record.get("properties") if isinstance(record.get("properties"), dict) else {}
    return [Fact(_event_id(record, "messageId"), kind, id_kind, identifier, when, _products(props))]


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
    return [Fact(_event_id(record, "sg_event_id"), kind, "email", email, when)]
