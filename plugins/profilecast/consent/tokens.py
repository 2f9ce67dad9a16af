"""Encrypted, authenticated one-click unsubscribe tokens (RFC 8058 links), with rotation.

A token carries the message key, the customer, the address, the topic and the day it was
issued, sealed with AES-SIV (``cryptography``): encrypted, so the address never shows in a
URL, and authenticated, so an altered token is refused. AES-SIV is deterministic: the same
message gets the same token, so a re-run export writes byte-identical batches (the
exactly-once checks compare them). Several keys may be active: the first seals, any opens
(rotate by putting the new key first and dropping the old one once its links expired). A
token older than the maximum age, counted from its issue day, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

DEMO_SECRET = "profilecast-demo-secret"
#: json.dumps(..., separators=(",", ":")) builds an encoder per call; one is enough.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _body_bytes(body: dict[str, Any]) -> bytes:
    """The body as compact ASCII JSON, byte for byte what ``json`` writes (tokens stay the
    same across versions). msgspec writes the same bytes ten times faster unless a value
    holds a character json escapes and msgspec does not (non-ASCII, DEL): those go to json."""
    raw = msgspec.json.encode(body)
    if raw.isascii() and b"\x7f" not in raw:
        return raw
    return _COMPACT.encode(body).encode()


class TokenError(ValueError):
    """A token that was not made with an active key, was altered, or has expired."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def _siv_key(secret: str) -> bytes:
    """A 512-bit AES-SIV key (AES-256) derived from a configured secret."""
    return hashlib.sha512(b"profilecast-unsubscribe|" + secret.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Unsubscribe:
    message_key: str
    customer_id: str
    email: str
    topic: str | None


class Tokens:
    def __init__(self, secrets: tuple[str, ...], max_age_seconds: int) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        if not secrets:
            raise ValueError("no unsubscribe key configured")
        self.secrets = secrets
        self.max_age = max_age_seconds
        self._keys = [AESSIV(_siv_key(s)) for s in secrets]

    @property
    def is_demo(self) -> bool:
        return self.secrets[0] == DEMO_SECRET

    def make(self, message_key: str, customer_id: str, email: str, topic: str | None,
             issued: str | None = None) -> str:  # fmt: skip
        """The token for one message; ``issued`` is its day (YYYY-MM-DD, default today)."""
        day = issued or datetime.now(UTC).strftime("%Y-%m-%d")
        body = {"m": message_key, "c": customer_id, "e": email.strip().lower(), "t": topic,
                "i": day}  # fmt: skip
        return _b64(self._keys[0].encrypt(_body_bytes(body), None))

    def read(self, token: str, now: float | None = None) -> Unsubscribe:
        from cryptography.exceptions import InvalidTag

        try:
            raw = _unb64(token)
        except (ValueError, TypeError):
            raise TokenError("this unsubscribe link is not valid", 403) from None
        body: dict[str, Any] | None = None
        for key in self._keys:
            try:
                body = json.loads(key.decrypt(raw, None))
                break
            except (InvalidTag, ValueError):
                continue
        if body is None:
            raise TokenError("this unsubscribe link is not valid", 403)
        issued = datetime.strptime(str(body.get("i")), "%Y-%m-%d").replace(tzinfo=UTC)
        if (now if now is not None else time.time()) - issued.timestamp() > self.max_age:
            raise TokenError("this unsubscribe link has expired", 410)
        return Unsubscribe(str(body["m"]), str(body["c"]), str(body["e"]), body.get("t"))
