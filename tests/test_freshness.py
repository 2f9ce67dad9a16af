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
                                    "recently_viewed_since_build", "freshness"} <= set(
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
