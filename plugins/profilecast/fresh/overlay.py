"""The overlay: fresh facts resolved to customers and laid over their built profiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from profilecast.fresh.facts import SUPPRESSING
from profilecast.fresh.store import FreshStore, StoredFact
from profilecast.sources.validation import format_timestamp, parse_timestamp

_CHUNK = 500


@dataclass
class Overlay:
    """What the fresh facts say about one customer."""

    facts: list[StoredFact] = field(default_factory=list)

    @property
    def fresh_as_of(self) -> str | None:
        return max((f.received_at for f in self.facts), default=None)

    def suppression(self, campaign_kind: str, topic: str | None = None) -> str | None:
        """The fact that stops this kind of mail (on this consent topic) for the customer,
        or None. A complaint or a bounce stops everything; for marketing, the latest
        explicit choice wins: a global unsubscribe leaves every topic, a topic unsubscribe
        leaves that topic, a resubscribe to a topic comes back to it."""
        for f in self.facts:
            if SUPPRESSING.get(f.kind) == "all":
                return f.kind
        if campaign_kind != "marketing":
            return None
        return "unsubscribe" if self._left(topic) else None

    def _left(self, topic: str | None) -> bool:
        return self._latest_choice(topic) == "unsubscribe"

    def _latest_choice(self, topic: str | None) -> str | None:
        """The latest explicit choice for ``topic`` among the facts: a global or topic
        unsubscribe, a resubscribe to the topic, or None."""
        choice = None
        for f in sorted(self.facts, key=lambda f: f.occurred_at):
            on = f.props.get("topic") if f.props else None
            if f.kind == "unsubscribe" and (on is None or on == topic):
                choice = "unsubscribe"
            elif f.kind == "resubscribe" and on is not None and on == topic:
                choice = "resubscribe"
        return choice

    def resubscribed_topics(self, topics: list[str]) -> list[str]:
        """The topics among ``topics`` whose latest fresh choice is to come back."""
        return [t for t in topics if self._latest_choice(t) == "resubscribe"]

    def unsubscribed_topics(self, topics: list[str]) -> list[str]:
        """The topics among ``topics`` the fresh facts say the customer has left."""
        return [t for t in topics if self._left(t)]

    def frequency(self) -> str | None:
        """The latest frequency chosen in the preference centre, if any since the build."""
        chosen = [f for f in self.facts if f.kind == "preference" and f.props.get("frequency")]
        return str(max(chosen, key=lambda f: f.occurred_at).props["frequency"]) if chosen else None

    def last(self, kind: str) -> str | None:
        return max((f.occurred_at for f in self.facts if f.kind == kind), default=None)

    def count_after(self, kind: str, reference: Any) -> int:
        """How many facts of ``kind`` are later than ``reference`` (e.g. the build's last
        order): what the build does not count yet."""
        return sum(1 for f in self.facts if f.kind == kind and _after(f.occurred_at, reference))

    def exits(self, exit_on: list[str], profile: dict[str, Any]) -> str | None:
        """The first ``exit_on`` fact the built profile does not reflect yet, or None."""
        for kind in exit_on:
            when = self.last(kind)
            if when is None:
                continue
            if kind == "purchase" and not _after(when, profile.get("last_order_at")):
                continue  # the build already holds this order
            return kind
        return None

    def fields(self, profile: dict[str, Any]) -> dict[str, Any]:
        """The profile fields the facts change: the cart, recent views (newest first) and
        recommendations without what was bought since the build."""
        changed: dict[str, Any] = {}
        cart = self.cart(profile)
        if cart is not None:
            changed["cart_items"] = ", ".join(cart)
            changed["cart_items_count"] = len(cart)
        views = [p for f in sorted(self.facts, key=lambda f: f.occurred_at, reverse=True)
                 if f.kind == "view" for p in f.products]  # fmt: skip
        if views and "recently_viewed_products" in profile:
            old = _items(profile.get("recently_viewed_products"))
            changed["recently_viewed_products"] = ", ".join(
                list(dict.fromkeys(views + old))[: max(5, len(old))]
            )
        bought = {p for f in self.facts if f.kind == "purchase" for p in f.products}
        if bought and "recommended_products" in profile:
            recs = _items(profile.get("recommended_products"))
            changed["recommended_products"] = ", ".join(p for p in recs if p not in bought)
        return changed

    def cart(self, profile: dict[str, Any]) -> list[str] | None:
        """The cart after the fresh facts, or None when they say nothing about it."""
        events = sorted(
            (f for f in self.facts if f.kind in ("purchase", "cart_add", "cart_remove")),
            key=lambda f: f.occurred_at,
        )
        events = [f for f in events if _after(f.occurred_at, profile.get("last_cart_added_at"))]
        if not events:
            return None
        items = _items(profile.get("cart_items"))
        for f in events:
            if f.kind == "purchase":
                items = []
            elif f.kind == "cart_add":
                items = [p for p in items if p not in f.products] + list(f.products)
            else:
                items = [p for p in items if p not in f.products]
        return items


def _items(value: Any) -> list[str]:
    """A profile's comma-separated product list."""
    if value is None or value != value:  # None or NaN
        return []
    return [p.strip() for p in str(value).split(",") if p.strip()]


def _after(when: str, reference: Any) -> bool:
    ts = parse_timestamp(when)
    ref = parse_timestamp(reference)
    return ts is not None and (ref is None or ts > ref)


def facts_cutoff(profile_as_of: Any, lookback_days: int) -> str:
    """Facts received before this are in the build (its lookback re-read them)."""
    as_of = parse_timestamp(profile_as_of)
    if as_of is None:
        return "0000"
    return format_timestamp(as_of - timedelta(days=lookback_days))


def _lookup(wh: Any, sql: str, values: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(values), _CHUNK):
        chunk = values[i : i + _CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        for key, cid in wh.query(sql.format(marks=marks), tuple(chunk)):
            found[str(key)] = str(cid)
    return found


def resolve(wh: Any, store: FreshStore, facts: list[StoredFact]) -> dict[str, list[StoredFact]]:
    """customer_id -> their facts, through the warehouse's identity map and the store's own
    anonymous-to-user links (an anonymous id first seen after the build still resolves once
    an identify has linked it)."""
    users = sorted({f.identifier for f in facts if f.id_kind == "web_user"})
    anons = sorted({f.identifier for f in facts if f.id_kind == "web_anonymous"})
    emails = sorted({f.identifier for f in facts if f.id_kind == "email"})
    linked = store.links(anons)
    users = sorted(set(users) | set(linked.values()))
    map_sql = (
        "select source_record_id, customer_id from customer_identity_map "
        "where source = '{source}' and source_record_id in ({{marks}})"
    )
    by_user = _lookup(wh, map_sql.format(source="web_user"), users) if users else {}
    by_anon = _lookup(wh, map_sql.format(source="web_anonymous"), anons) if anons else {}
    by_email = (
        _lookup(
            wh,
            "select lower(email), customer_id from customer_profiles "
            "where lower(email) in ({marks})",
            emails,
        )
        if emails
        else {}
    )
    out: dict[str, list[StoredFact]] = {}
    for f in facts:
        if f.id_kind == "web_user":
            cid = by_user.get(f.identifier)
        elif f.id_kind == "web_anonymous":
            cid = by_anon.get(f.identifier) or by_user.get(linked.get(f.identifier, ""))
        else:
            cid = by_email.get(f.identifier)
        if cid:
            out.setdefault(cid, []).append(f)
    return out


def load_overlay(wh: Any, store: FreshStore | None, received_since: str) -> dict[str, Overlay]:
    """customer_id -> Overlay for every customer a fact received since the cutoff names."""
    if store is None:
        return {}
    facts = store.facts_since(received_since)
    return {cid: Overlay(fs) for cid, fs in resolve(wh, store, facts).items()}


def since_build(wh: Any, fresh_path: Any, lookback_days: int) -> dict[str, Overlay]:
    """What the collector saw since the build, per customer (empty without a collector)."""
    store = FreshStore.open_for_reading(fresh_path)
    if store is None:
        return {}
    try:
        as_of = wh.query("select max(profile_as_of) from customer_profiles")[0][0]
        return load_overlay(wh, store, facts_cutoff(as_of, lookback_days))
    finally:
        store.close()


def summary(settings: Any) -> dict[str, Any]:
    """The collector's facts since the build: by kind, and how many customers they name."""
    from profilecast.warehouse import connect

    store = FreshStore.open_for_reading(settings.fresh_path)
    if store is None:
        return {"facts": 0, "by_kind": {}, "customers": 0, "latest_received_at": None}
    try:
        summary = store.stats()
    finally:
        store.close()
    try:
        with connect(settings, read_only=True) as wh:
            summary["customers"] = len(since_build(wh, settings.fresh_path, settings.lookback_days))
    except Exception as exc:  # noqa: BLE001 - a warehouse busy with the daily build
        summary["customers"] = None
        summary["warehouse"] = f"not read: {type(exc).__name__}: {str(exc)[:200]}"
    return summary
