"""Send-time freshness: events the collector takes after the build change the next render,
and the profile API answers with them."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import time
from datetime import UTC, datetime

import pytest
from profilecast import pipeline
from profilecast.config import load_settings
from profilecast.warehouse import connect

from tests.collector_harness import start_collector

START = datetime(2026, 10, 31, tzinfo=UTC)


@pytest.fixture()
def fresh_home(built, tmp_path, monkeypatch):
    """A private copy of the session's built warehouse, with published profiles."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(built.warehouse_path, home / "warehouse.duckdb")
    monkeypatch.setenv("PROFILECAST_HOME", str(home))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(built.sources))
    settings = load_settings()
    pipeline.publish_profiles(settings)
    return settings


def _signing_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(public).decode()


def _sign(key, timestamp: str, body: bytes) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def _rendered(result: dict) -> dict[str, dict]:
    with gzip.open(result["path"], "rt") as fh:
        return {m["customer_id"]: m for m in map(json.loads, fh)}


def test_events_after_the_build_change_the_next_render(fresh_home, tmp_path):
    settings = fresh_home
    with connect(settings, read_only=True) as wh:
        cart = [r[0] for r in wh.query(
            "select a.customer_id from campaign_audiences a join customer_identity_map m "
            "on m.customer_id = a.customer_id and m.source = 'web_user' "
            "where a.campaign_id = 'cart_reminder' order by 1")]  # fmt: skip
        user_of = dict(wh.query(
            "select customer_id, min(source_record_id) from customer_identity_map "
            "where source = 'web_user' group by 1"))  # fmt: skip
        email_of = dict(wh.query("select customer_id, email from customer_profiles"))
    assert len(cart) >= 3, "the sample needs cart abandoners with a web login"
    before = _rendered(pipeline.render("cart_reminder", START, settings))
    assert set(cart) <= set(before)
    buyer, unsubscriber = cart[0], cart[1]

    key, public = _signing_key()
    col = start_collector(settings.home, tmp_path / "drops",
                          PROFILECAST_SENDGRID_WEBHOOK_KEY=public)  # fmt: skip
    try:
        bought = col.post("/v1/track", {
            "userId": user_of[buyer], "event": "Order Completed", "messageId": "fresh-order-1",
            "properties": {"products": [{"name": "Trail Tent"}]}})  # fmt: skip
        assert bought.status == 200
        body = json.dumps([{"email": email_of[unsubscriber], "event": "unsubscribe",
                            "sg_event_id": "fresh-unsub-1",
                            "timestamp": int(time.time())}]).encode() + b"\r\n"  # fmt: skip
        ts = str(int(time.time()))
        unsub = col.post("/webhooks/sendgrid", raw=body, key=None, headers={
            "X-Twilio-Email-Event-Webhook-Signature": _sign(key, ts, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts})  # fmt: skip
        assert unsub.status == 200, unsub

        # The very next render, without a build in between.
        result = pipeline.render("cart_reminder", START, settings)
        after = _rendered(result)
        assert buyer not in after and unsubscriber not in after
        assert set(cart[2:]) <= set(after)
        assert result["skipped_fresh"] == {"exit on fresh purchase": 1, "fresh unsubscribe": 1}
        kept = after[cart[2]]
        assert kept["freshness"]["profile_as_of"].startswith("2026-11-01")

        # The profile API: the published profile with the fresh facts on top.
        profile = col.get(f"/v1/profiles/{buyer}")
        assert profile.status == 200
        assert profile.body["last_purchase_since_build"] is not None
        assert profile.body["cart_items_count"] == 0
        assert profile.body["freshness"]["fresh_facts_as_of"] is not None
        assert set(profile.body) - {"suppressed_by", "last_purchase_since_build",
                                    "recently_viewed_since_build", "freshness",
                                    "purchases_since_build", "unsubscribed_topics",
                                    "resubscribed_topics"} <= set(
            col_fields())  # fmt: skip
        from profilecast.collector.profiles import email_hash

        by_hash = col.get(f"/v1/profiles/by-email-hash/{email_hash(email_of[unsubscriber])}")
        assert by_hash.status == 200 and by_hash.body["customer_id"] == unsubscriber
        assert by_hash.body["suppressed_by"] == "unsubscribe"
        assert "email" not in by_hash.body  # not on the allow-list
    finally:
        col.stop()


def col_fields() -> tuple[str, ...]:
    from profilecast.config import collector_settings

    return collector_settings().profile_fields


def test_cart_flow_on_the_built_profiles_outranks_the_daily_cart_reminder(
    fresh_home, tmp_path, monkeypatch
):
    """A cart event for a built customer enters the cart flow (resolved through the
    published snapshot), the reminder goes out 30 minutes later with their profile, and the
    daily cart_reminder (priority 80 < 90) leaves that customer to the flow that day."""
    from datetime import timedelta

    from profilecast.flows.service import advance_flows

    settings = fresh_home
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    clock = tmp_path / "clock"
    clock.write_text(now.isoformat())
    monkeypatch.setenv("PROFILECAST_CLOCK_FILE", str(clock))
    with connect(settings, read_only=True) as wh:
        cid, user, email, first = wh.query(
            "select a.customer_id, min(m.source_record_id), p.email, p.first_name "
            "from campaign_audiences a join customer_identity_map m "
            "on m.customer_id = a.customer_id and m.source = 'web_user' "
            "join customer_profiles p on p.customer_id = a.customer_id "
            "where a.campaign_id = 'cart_reminder' and p.is_emailable "
            "group by 1, 3, 4 order by 1 limit 1")[0]  # fmt: skip
    col = start_collector(settings.home, tmp_path / "drops")
    try:
        added = col.post("/v1/track", {
            "userId": user, "event": "Product Added", "messageId": "flow-cart-1",
            "timestamp": (now - timedelta(minutes=31)).isoformat(),
            "properties": {"name": "Summit Pack"}})  # fmt: skip
        assert added.status == 200
    finally:
        col.stop()
    out = advance_flows(settings)
    assert out["sent"] == {"cart_abandonment": 1}, out
    batch = next((settings.home / "exports" / "flows" / "cart_abandonment").rglob("batch-*"))
    request = json.loads(gzip.decompress(batch.read_bytes()))
    entry = request["BulkEmailEntries"][0]
    assert entry["Destination"]["ToAddresses"] == [email]
    data = json.loads(
        entry["ReplacementEmailContent"]["ReplacementTemplate"]["ReplacementTemplateData"]
    )
    assert "Summit Pack" in data["html"] and (first or "") in data["subject"]

    result = pipeline.render("cart_reminder", START, settings)
    assert cid not in _rendered(result)
    assert result["skipped_fresh"]["flow today: cart_abandonment"] == 1


def test_a_one_click_unsubscribe_stops_that_topic_at_the_next_render(fresh_home, tmp_path):
    """The link in an exported message, clicked (RFC 8058 POST): the very next render of a
    promotions campaign leaves the customer out; newsletter mail is still allowed."""
    import urllib.request

    from profilecast.consent.links import link_settings

    settings = fresh_home
    first = _rendered(pipeline.render("cart_reminder", START, settings))
    cid, message = sorted(first.items())[0]
    tokens, _ = link_settings()
    token = tokens.make(message["message_key"], cid, message["to"], "promotions")
    col = start_collector(settings.home, tmp_path / "drops")
    try:
        req = urllib.request.Request(f"{col.url}/u/{token}", data=b"List-Unsubscribe=One-Click",
                                     method="POST")  # fmt: skip
        clicked = time.monotonic()
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        with connect(settings, read_only=True) as wh:
            overlay = pipeline.fresh_overlay(wh, settings)[cid]
        assert overlay.suppression("marketing", "promotions") == "unsubscribe"
        assert time.monotonic() - clicked < 1.0  # click to "a render would skip them"
        result = pipeline.render("cart_reminder", START, settings)
        after = _rendered(result)
        assert cid not in after and result["skipped_fresh"] == {"fresh unsubscribe": 1}
        assert overlay.suppression("marketing", "newsletter") is None
    finally:
        col.stop()


def test_a_suppression_list_row_keeps_a_customer_out_of_the_render(
    fresh_home, tmp_path, monkeypatch
):
    settings = fresh_home
    first = _rendered(pipeline.render("cart_reminder", START, settings))
    cid, message = sorted(first.items())[-1]
    folder = tmp_path / "supp"
    folder.mkdir()
    (folder / "crm_export.csv").write_text(f"email,topic\n{message['to'].upper()},promotions\n")
    monkeypatch.setenv("PROFILECAST_SUPPRESSIONS", str(folder))
    result = pipeline.render("cart_reminder", START, settings)
    assert cid not in _rendered(result)
    assert result["skipped_fresh"] == {"suppression list": 1}
