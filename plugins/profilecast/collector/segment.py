"""Segment's HTTP tracking API: write-key auth, the calls, and what is accepted or why not."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any

from profilecast.sources.catalog import spec_for
from profilecast.sources.connectors.dialects import normalize
from profilecast.sources.validation import rejection

#: The endpoints and the call type each implies (``batch`` items carry their own).
CALLS = ("track", "identify", "page", "screen", "group", "alias")


class Rejected(ValueError):
    """A request or event that cannot be accepted; ``status`` is the HTTP answer."""

    def __init__(self, reason: str, status: int = 400, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def write_key_from(authorization: str | None, body: Any) -> str | None:
    """The write key: HTTP basic user name (Segment's libraries), else ``writeKey`` in the
    body (Segment's HTTP API accepts both)."""
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return body["writeKey"]
    return None


def key_allowed(key: str | None, allowed: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured key."""
    if not key:
        return False
    return any(hmac.compare_digest(key.encode(), a.encode()) for a in allowed)


def parse_body(raw: bytes, expect: type | None = None, shape: str = "") -> Any:
    """The JSON body (Rejected when it is not JSON, or not of the ``expect``-ed type)."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(f"body is not JSON: {exc}") from None
    if expect is not None and not isinstance(body, expect):
        raise Rejected(shape or f"body must be a JSON {expect.__name__}")
    return body


@dataclass
class Verdict:
    """One event: the record to journal (as received, plus ``receivedAt``) or the reason."""

    record: dict[str, Any] | None
    reason: str | None = None


def check_event(
    event: Any, call: str | None, received_at: str, max_event_bytes: int, shared: dict[str, Any]
) -> Verdict:
    """Validate one call the way the daily extract will (same spec, same rules)."""
    if not isinstance(event, dict):
        return Verdict(None, f"not an object (got {type(event).__name__})")
    size = len(json.dumps(event, default=str))
    if size > max_event_bytes:
        return Verdict(None, f"event is {size} bytes; the limit is {max_event_bytes}")
    record = {**shared, **{k: v for k, v in event.items() if k != "writeKey"}}
    if call is not None:
        given = record.get("type")
        if given not in (None, "", call):
            return Verdict(None, f"type {given!r} posted to /v1/{call}")
        record["type"] = call
    record.setdefault("receivedAt", received_at)
    spec = spec_for("web", "events")
    reason = rejection(spec, normalize(spec.dialect, dict(record)))
    return Verdict(None, reason) if reason else Verdict(record)


def events_of(body: Any, call: str | None) -> tuple[list[Any], dict[str, Any]]:
    """The events of a request and the fields a batch shares with each (its ``context``)."""
    if call is not None:
        return [body], {}
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise Rejected("a batch needs a JSON object with a 'batch' list")
    shared = {k: v for k, v in body.items() if k == "context"}
    return list(body["batch"]), shared
