"""ESP feedback webhooks: SendGrid's signed Event Webhook and SES notifications through SNS.

Both arrive as ESP events in SendGrid's shape (``sg_event_id``, ``email``, ``event``,
``timestamp``, ...), which is what the daily ``esp.events`` extract reads.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import urllib.request
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

from profilecast.collector.segment import Rejected, parse_body

SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


def verify_sendgrid(
    public_key_b64: str, signature_b64: str | None, timestamp: str | None, body: bytes,
    max_age: int = 0, now: float | None = None,
) -> None:  # fmt: skip
    """Raise Rejected(403) unless the ECDSA signature over timestamp + body verifies."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    if not public_key_b64:
        raise Rejected(
            "the SendGrid webhook is not configured (PROFILECAST_SENDGRID_WEBHOOK_KEY)", 503
        )
    if not signature_b64 or not timestamp:
        raise Rejected("missing SendGrid signature or timestamp header", 401)
    if max_age:
        if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > max_age:
            raise Rejected("SendGrid timestamp outside the accepted window", 403)
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64))
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise Rejected(f"unreadable SendGrid key or signature: {exc}", 403) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Rejected("the SendGrid verification key is not an ECDSA key", 503)
    try:
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected("SendGrid signature does not verify", 403) from None


def sendgrid_events(body: bytes) -> list[Any]:
    return parse_body(body, list, "a SendGrid event webhook body is a JSON list of events")


# --- SNS -------------------------------------------------------------------------------

_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
_SIGNED_KEYS["UnsubscribeConfirmation"] = _SIGNED_KEYS["SubscriptionConfirmation"]


def _allowed_url(url: str, host_pattern: str) -> bool:
    """An SNS certificate or subscribe URL: https on an allowed host (plain http only for
    a loopback host the pattern allows, which is what tests use)."""
    parts = urlparse(url)
    host = parts.hostname or ""
    if not re.match(host_pattern, host):
        return False
    return parts.scheme == "https" or (
        parts.scheme == "http" and host in ("127.0.0.1", "localhost")
    )


@lru_cache(maxsize=16)
def _certificate(url: str) -> Any:
    from cryptography import x509

    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - host checked
        return x509.load_pem_x509_certificate(resp.read())


def sns_canonical(message: dict[str, Any]) -> bytes:
    keys = _SIGNED_KEYS.get(str(message.get("Type")))
    if keys is None:
        raise Rejected(f"unknown SNS message type {message.get('Type')!r}")
    parts = [f"{k}\n{message[k]}\n" for k in keys if k in message]
    return "".join(parts).encode()


def verify_sns(message: dict[str, Any], host_pattern: str, topics: tuple[str, ...]) -> None:
    """Raise Rejected(403) unless the SNS message's RSA signature verifies with AWS's
    certificate (fetched from an allowed host) and the topic is one we accept."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if topics and message.get("TopicArn") not in topics:
        raise Rejected(f"SNS topic {message.get('TopicArn')!r} is not accepted", 403)
    cert_url = str(message.get("SigningCertURL") or "")
    if not _allowed_url(cert_url, host_pattern):
        raise Rejected(f"SNS SigningCertURL {cert_url!r} is not an AWS SNS host", 403)
    digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(message.get("SignatureVersion")))
    if digest is None:
        raise Rejected("unknown SNS SignatureVersion", 403)
    try:
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
        cert = _certificate(cert_url)
        cert.public_key().verify(signature, sns_canonical(message), padding.PKCS1v15(), digest)
    except (InvalidSignature, binascii.Error, ValueError):
        raise Rejected("SNS signature does not verify", 403) from None
    except OSError as exc:
        raise Rejected(f"SNS certificate unavailable: {exc}", 503) from None


def confirm_subscription(message: dict[str, Any], host_pattern: str) -> None:
    """Visit the SubscribeURL of a verified SubscriptionConfirmation."""
    url = str(message.get("SubscribeURL") or "")
    if not _allowed_url(url, host_pattern):
        raise Rejected(f"SubscribeURL {url!r} is not an AWS SNS host", 403)
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - host checked
        resp.read()


_SES_EVENTS = {
    "Delivery": "delivered", "Send": "processed", "Reject": "dropped", "Open": "open",
    "Click": "click", "Complaint": "spamreport", "DeliveryDelay": "deferred",
}  # fmt: skip


def _recipients(note: dict[str, Any], kind: str) -> list[tuple[str, str | None]]:
    """(address, diagnostic) for everyone a notification is about."""
    body = note.get(kind[0].lower() + kind[1:]) or {}
    if kind == "Bounce":
        return [(r.get("emailAddress"), r.get("diagnosticCode"))
                for r in body.get("bouncedRecipients") or []]  # fmt: skip
    if kind == "Complaint":
        return [(r.get("emailAddress"), body.get("complaintFeedbackType"))
                for r in body.get("complainedRecipients") or []]  # fmt: skip
    if kind == "Delivery":
        return [(r, None) for r in body.get("recipients") or []]
    return [(r, None) for r in (note.get("mail") or {}).get("destination") or []]


def _tags(mail: dict[str, Any]) -> dict[str, Any]:
    """The message's tracking tags (SES returns ``ReplacementTags`` as ``mail.tags``, each a
    list of values)."""
    from profilecast.export.formats import TRACKED

    tags = mail.get("tags") or {}
    out = {}
    for key in TRACKED:
        value = tags.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            out[key] = str(value)
    return out


def ses_events(note: dict[str, Any]) -> list[dict[str, Any]]:
    """An SES notification (or event-publishing record) as ESP events, one per recipient."""
    kind = str(note.get("notificationType") or note.get("eventType") or "")
    mail = note.get("mail") or {}
    if kind == "Bounce":
        permanent = (note.get("bounce") or {}).get("bounceType") == "Permanent"
        event = "bounce" if permanent else "deferred"
    elif kind == "Subscription":
        prefs = (note.get("subscription") or {}).get("newTopicPreferences") or {}
        event = "unsubscribe" if prefs.get("unsubscribeAll") else "subscription_change"
    else:
        event = _SES_EVENTS.get(kind)
    if event is None:
        raise Rejected(f"unknown SES notification type {kind!r}")
    detail = note.get(kind[0].lower() + kind[1:] if kind else "") or {}
    when = detail.get("timestamp") or mail.get("timestamp")
    ref = detail.get("feedbackId") or mail.get("messageId") or ""
    out = []
    for address, reason in _recipients(note, kind):
        if not address:
            continue
        out.append({
            "sg_event_id": f"ses-{ref}-{event}-{address}".lower(),
            "email": address, "event": event, "timestamp": when,
            "sg_message_id": mail.get("messageId"), "reason": reason,
            "type": (note.get("bounce") or {}).get("bounceType"),
            **_tags(mail),
        })  # fmt: skip
    return out
