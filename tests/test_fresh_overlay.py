"""The overlay's rules, on hand-made facts (no warehouse)."""

from __future__ import annotations

from profilecast.campaigns.definition import Campaign
from profilecast.campaigns.render import overlaid
from profilecast.fresh.overlay import Overlay
from profilecast.fresh.store import StoredFact

PROFILE = {
    "customer_id": "c1", "cart_items": "Tent, Stove", "cart_items_count": 2,
    "last_cart_added_at": "2026-11-20 10:00:00", "last_order_at": "2026-11-01 09:00:00",
    "recently_viewed_products": "Lamp", "recommended_products": "Tent, Mug, Map",
}  # fmt: skip


def _fact(kind: str, when: str, *products: str) -> StoredFact:
    return StoredFact(kind, "web_user", "u1", when, products, when)


def _campaign(kind: str = "marketing", exit_on: list[str] | None = None) -> Campaign:
    return Campaign("c", ["s"], kind, "jsonl", "a@b.c", ["hi"], "", ["first_name"],
                    exit_on=exit_on or [])  # fmt: skip


def test_unsubscribe_stops_marketing_only_and_bounce_stops_everything():
    unsub = Overlay([_fact("unsubscribe", "2026-11-21 00:00:00")])
    assert overlaid(PROFILE, _campaign(), unsub) == (None, "fresh unsubscribe")
    assert overlaid(PROFILE, _campaign("transactional"), unsub)[0] is not None
    bounce = Overlay([_fact("bounce", "2026-11-21 00:00:00")])
    assert overlaid(PROFILE, _campaign("transactional"), bounce) == (None, "fresh bounce")


def test_a_purchase_exits_only_when_the_build_does_not_hold_it():
    newer = Overlay([_fact("purchase", "2026-11-21 00:00:00", "Tent")])
    assert overlaid(PROFILE, _campaign(exit_on=["purchase"]), newer) == (
        None, "exit on fresh purchase")  # fmt: skip
    held = Overlay([_fact("purchase", "2026-11-01 09:00:00", "Tent")])  # = last_order_at
    assert overlaid(PROFILE, _campaign(exit_on=["purchase"]), held)[0] is not None
    # Without exit_on the purchase only empties the cart and trims recommendations.
    rec, why = overlaid(PROFILE, _campaign(), newer)
    assert why is None and rec["cart_items"] == "" and rec["cart_items_count"] == 0
    assert rec["recommended_products"] == "Mug, Map"


def test_cart_and_views_follow_the_events_in_order():
    facts = Overlay([
        _fact("cart_remove", "2026-11-21 00:00:00", "Stove"),
        _fact("cart_add", "2026-11-21 01:00:00", "Boots"),
        _fact("cart_add", "2026-11-19 00:00:00", "Old"),  # before the build's last cart add
        _fact("view", "2026-11-21 02:00:00", "Map"),
    ])  # fmt: skip
    rec, _ = overlaid(PROFILE, _campaign(), facts)
    assert rec["cart_items"] == "Tent, Boots" and rec["cart_items_count"] == 2
    assert rec["recently_viewed_products"] == "Map, Lamp"
    assert overlaid(PROFILE, _campaign(), None) == (PROFILE, None)
