"""The event collector as a real process: Segment calls, webhooks, limits, durability."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.collector_harness import start_collector
from tests.conftest import SHARED_EXTERNAL

SPEC = SHARED_EXTERNAL / "web_segment_spec" / "segment_spec_examples.jsonl"
GO = SHARED_EXTERNAL / "web_segment_go"
SIGNED = SHARED_EXTERNAL / "esp_sendgrid_webhook" / "signed_event.json"
CALLS = {"track", "identify", "page", "screen", "group", "alias"}


def _needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared external fixtures live beside the repo)")


@pytest.fixture()
def collector(tmp_path):
    col = start_collector(tmp_path / "home", tmp_path / "drops",
                          PROFILECAST_COLLECTOR_ROTATE_SECONDS="1")  # fmt: skip
    yield col
    col.stop()


def test_segment_examples_are_all_accounted_for(collector, tmp_path, monkeypatch):
    _needs(SPEC)
    posted = accepted = rejected = 0
    for line in SPEC.read_text().splitlines():
        payload = json.loads(line)["payload"]
        kind = payload.get("type")
        if kind in CALLS:
            answer = collector.post(f"/v1/{kind}", payload)
        else:  # fragments without a type: as a client's batch would carry them
            answer = collector.post("/v1/batch", {"batch": [payload]})
        posted += 1
        accepted += answer.body.get("accepted", 0)
        rejected += len(answer.body.get("rejected", []))
        assert answer.status in (200, 400), answer
        if answer.status == 400:
            assert answer.body["rejected"][0]["reason"]
    for path in sorted(GO.glob("*.json")):
        body = json.loads(path.read_text())
        answer = collector.post("/v1/batch", body)
        assert answer.status == 200, (path.name, answer)
        posted += len(body["batch"])
        accepted += answer.body["accepted"]
        rejected += len(answer.body.get("rejected", []))
    assert accepted + rejected == posted
    assert accepted > 80 and rejected > 20  # the spec's fragments lack a type or an id
    collector.stop()  # seals every open segment
    web = collector.journal("web/events")
    quarantine = collector.journal("_collector/quarantine")
    assert len(web) == accepted and len(quarantine) == rejected
    assert all(q["reason"] and q["payload"] for q in quarantine)

    # The daily extract reads the journal as the web source: every accepted event loads.
    from profilecast import pipeline
    from profilecast.config import load_settings

    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(tmp_path / "drops"))
    now = datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    manifest = pipeline.extract("web", start, start + timedelta(days=2), load_settings())[0]
    assert manifest["rows_read"] == accepted
    assert manifest["rows_loaded"] == accepted and manifest["rows_quarantined"] == 0


def test_write_key_size_and_rate_limits(tmp_path):
    col = start_collector(tmp_path / "home", tmp_path / "drops",
                          PROFILECAST_COLLECTOR_RATE="1", PROFILECAST_COLLECTOR_BURST="3",
                          PROFILECAST_COLLECTOR_MAX_EVENT="2000")  # fmt: skip
    try:
        event = {"userId": "u1", "event": "Signed Up"}
        assert col.post("/v1/track", event, key=None).status == 401
        assert col.post("/v1/track", event, key="not-a-key").status == 401
        big = {"userId": "u1", "event": "Big", "properties": {"blob": "x" * 5000}}
        too_big = col.post("/v1/track", big)
        assert too_big.status == 413 and "limit" in too_big.body["reason"]
        answers = [col.post("/v1/track", event).status for _ in range(6)]
        assert answers[:2] == [200, 200] and 429 in answers
        bad = col.post("/v1/track", raw=b"{not json")
        assert bad.status in (400, 429)
        time.sleep(3)
        assert col.post("/v1/track", raw=b"{not json").status == 400
        col.stop()
        reasons = [q["reason"] for q in col.journal("_collector/quarantine")]
        assert "body is not JSON" in reasons
    finally:
        col.stop()


def _sendgrid_headers(signature: str, timestamp: str) -> dict[str, str]:
    return {"X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}  # fmt: skip


def test_sendgrid_webhook_signature(tmp_path):
    _needs(SIGNED)
    signed = json.loads(SIGNED.read_text())
    body = signed["body"].encode()
    col = start_collector(tmp_path / "home", tmp_path / "drops",
                          PROFILECAST_SENDGRID_WEBHOOK_KEY=signed["public_key"])  # fmt: skip
    try:
        good = col.post("/webhooks/sendgrid", raw=body, key=None,
                        headers=_sendgrid_headers(signed["signature"], signed["timestamp"]))  # fmt: skip
        assert good.status == 200 and good.body["accepted"] == 1
        bad = signed["must_fail"]
        variants = [
            (body, bad["other_signature"], signed["timestamp"]),
            (bad["other_body"].encode(), signed["signature"], signed["timestamp"]),
            (body, signed["signature"], bad["other_timestamp"]),
        ]
        for raw, sig, ts in variants:
            answer = col.post("/webhooks/sendgrid", raw=raw, key=None,
                              headers=_sendgrid_headers(sig, ts))  # fmt: skip
            assert answer.status == 403, answer
        assert col.post("/webhooks/sendgrid", raw=body, key=None).status == 401
    finally:
        col.stop()
    # Another key: the genuine request is refused too.
    col = start_collector(tmp_path / "home2", tmp_path / "drops",
                          PROFILECAST_SENDGRID_WEBHOOK_KEY=signed["must_fail"]["other_public_key"])  # fmt: skip
    try:
        answer = col.post("/webhooks/sendgrid", raw=body, key=None,
                          headers=_sendgrid_headers(signed["signature"], signed["timestamp"]))  # fmt: skip
        assert answer.status == 403
    finally:
        col.stop()
    events = col.journal("esp/events")
    assert [e["sg_event_id"] for e in events] == [json.loads(signed["body"])[0]["sg_event_id"]]


def test_sigkill_during_a_burst_loses_no_acknowledged_event(tmp_path):
    home, drops = tmp_path / "home", tmp_path / "drops"
    col = start_collector(home, drops, PROFILECAST_COLLECTOR_RATE="100000")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            ids = [f"c{n}-{i}-{k}" for k in range(5)]
            batch = {"batch": [{"type": "track", "userId": f"u{n}", "event": "Product Viewed",
                                "messageId": m, "properties": {"name": "Tent"}} for m in ids]}  # fmt: skip
            try:
                answer = col.post("/v1/batch", batch)
            except (OSError, http.client.HTTPException):
                return  # the collector died mid-request (or mid-answer): not acknowledged
            if answer.status == 200:
                with lock:
                    acked.extend(ids)
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    col.proc.send_signal(signal.SIGKILL)
    col.proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) > 100
    open_segments = list((drops / "web" / "events" / "collector").rglob("*.jsonl.open"))
    assert open_segments, "a SIGKILL leaves the open segment behind"

    restarted = start_collector(home, drops)  # recovery seals what the dead one left open
    try:
        health = restarted.get("/healthz", token=None).body
        assert health["recovered_segments"] >= 1
    finally:
        restarted.stop()
    journaled = [e["messageId"] for e in restarted.journal("web/events")]
    assert set(acked) <= set(journaled)
    assert not list((drops / "web" / "events" / "collector").rglob("*.jsonl.open"))
    import sqlite3

    facts = (
        sqlite3.connect(home / "fresh" / "facts.sqlite")
        .execute("select event_id from facts")
        .fetchall()
    )
    assert set(acked) <= {f[0] for f in facts}


def test_profile_api_needs_a_token(collector):
    assert collector.get("/v1/profiles/c1", token=None).status == 401
    assert collector.get("/v1/profiles/c1", token="wrong").status == 401
    assert collector.get("/v1/profiles/c1").status == 404  # nothing published yet


class _SnsEndpoint:
    """A loopback stand-in for SNS: serves the signing certificate and records visits to
    the SubscribeURL."""

    def __init__(self) -> None:
        from datetime import datetime as dt
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(1)
            .not_valid_before(dt(2020, 1, 1)).not_valid_after(dt(2040, 1, 1))
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        pem = cert.public_bytes(serialization.Encoding.PEM)
        self.visits: list[str] = []
        visits = self.visits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                visits.append(self.path)
                body = pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, message: dict) -> dict:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from profilecast.collector.webhooks import sns_canonical

        message = {**message, "SignatureVersion": "2", "SigningCertURL": f"{self.url}/cert.pem"}
        sig = self.key.sign(sns_canonical(message), padding.PKCS1v15(), hashes.SHA256())
        return {**message, "Signature": base64.b64encode(sig).decode()}


def test_ses_notifications_through_sns(tmp_path):
    sns = _SnsEndpoint()
    topic = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
    col = start_collector(tmp_path / "home", tmp_path / "drops",
                          PROFILECAST_SNS_CERT_HOSTS=r"^127\.0\.0\.1$",
                          PROFILECAST_SNS_TOPICS=topic)  # fmt: skip
    try:
        confirm = sns.sign({"Type": "SubscriptionConfirmation", "MessageId": "m-1",
                            "Token": "tok", "TopicArn": topic, "Message": "confirm",
                            "SubscribeURL": f"{sns.url}/confirm?Token=tok",
                            "Timestamp": "2026-11-26T10:00:00Z"})  # fmt: skip
        assert col.post("/webhooks/ses", confirm, key=None).status == 200
        assert any(v.startswith("/confirm") for v in sns.visits)
        bounce = {"notificationType": "Bounce",
                  "bounce": {"bounceType": "Permanent", "feedbackId": "fb-1",
                             "timestamp": "2026-11-26T10:01:00Z",
                             "bouncedRecipients": [{"emailAddress": "gone@example.com",
                                                    "diagnosticCode": "550 5.1.1 unknown"}]},
                  "mail": {"messageId": "ses-msg-1", "timestamp": "2026-11-26T10:00:30Z",
                           "destination": ["gone@example.com"]}}  # fmt: skip
        note = sns.sign({"Type": "Notification", "MessageId": "m-2", "TopicArn": topic,
                         "Message": json.dumps(bounce), "Timestamp": "2026-11-26T10:01:01Z"})  # fmt: skip
        answer = col.post("/webhooks/ses", note, key=None)
        assert answer.status == 200 and answer.body["accepted"] == 1
        tampered = {**note, "Message": json.dumps({**bounce, "notificationType": "Complaint"})}
        assert col.post("/webhooks/ses", tampered, key=None).status == 403
        other_topic = sns.sign({**{k: v for k, v in note.items() if k != "Signature"},
                                "TopicArn": "arn:aws:sns:eu-west-1:999:other"})  # fmt: skip
        assert col.post("/webhooks/ses", other_topic, key=None).status == 403
        elsewhere = {**note, "SigningCertURL": "http://evil.example.com/cert.pem"}
        assert col.post("/webhooks/ses", elsewhere, key=None).status == 403
    finally:
        col.stop()
        sns.server.shutdown()
    events = col.journal("esp/events")
    assert [(e["email"], e["event"]) for e in events] == [("gone@example.com", "bounce")]
